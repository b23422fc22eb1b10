"""``python -m scoring download --phase ID --out DIR``: a phase's inputs and landmarks from the platform.

Each file is streamed to disk with a progress bar and its sha256 checked against the one the platform shows; the
input zip is extracted to ``DIR/inputs/<Dataset>/<stem>.png``. Then it prints the ``check`` and ``score`` commands
to run. With S3 storage the platform answers a file with a short-lived presigned URL, fetched without the token.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from scoring.weights import sha256_of

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")


class DownloadError(RuntimeError):
    pass


def member_ok(name: str) -> bool:
    """``<Dataset>/<stem>.png``: two plain path parts (stems may hold spaces, as NTIRE's do), nothing that could
    point outside the folder or hide a character."""
    parts = name.split("/")
    return (len(parts) == 2 and name.endswith(".png") and "\\" not in name
            and all(part and part not in (".", "..") and not part.startswith(".") for part in parts)
            and all(ch.isprintable() for ch in name))


@dataclass(frozen=True)
class Fetched:
    inputs: Path | None
    landmarks: Path | None
    files: list[Path]
    listing: dict[str, Any]



def _stream_to(response: requests.Response, target: Path, progress: Callable[[int], None]) -> str:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for block in response.iter_content(1 << 20):
            out.write(block)
            digest.update(block)
            progress(len(block))
    return digest.hexdigest()


def fetch_file(http: requests.Session, server: str, entry: dict[str, Any], out: Path, show_progress: bool,
               timeout: float = 600) -> Path:
    """One listed file into ``out``, unless a file of that name and sha256 is there already; verified."""
    from tqdm import tqdm

    name = entry["name"]
    if not SAFE_NAME.match(name):
        raise DownloadError(f"the server named a file {name!r}; refusing to write it")
    target = out / name
    if target.is_file() and target.stat().st_size == entry["size"] and sha256_of(target) == entry["sha256"]:
        return target
    partial = target.with_name(target.name + ".part")
    response = http.get(server + entry["url"], stream=True, allow_redirects=False, timeout=timeout)
    if response.is_redirect:  # presigned storage URL: it carries its own signature, never our token
        location = response.headers["Location"]
        response.close()
        response = requests.get(location, stream=True, timeout=timeout)
    if response.status_code != 200:
        raise DownloadError(f"{name}: HTTP {response.status_code} {response.text[:200]}")
    with response, tqdm(total=entry["size"], unit="B", unit_scale=True, desc=name, disable=not show_progress) as bar:
        digest = _stream_to(response, partial, bar.update)
    if digest != entry["sha256"] or partial.stat().st_size != entry["size"]:
        partial.unlink()
        raise DownloadError(f"{name}: the download's sha256 is {digest}, not the {entry['sha256']} the platform"
                            " shows; nothing kept. Try again.")
    partial.replace(target)
    return target


def extract_inputs(archive: Path, dest: Path, sha256: str) -> Path:
    """Extract ``<Dataset>/<stem>.png`` members to ``dest``. A folder extracted from this very zip is kept
    (``dest/.sha256``); another non-empty folder is refused rather than mixed with."""
    marker = dest / ".sha256"
    if marker.is_file() and marker.read_text().strip() == sha256:
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise DownloadError(f"{dest} exists and holds other files; remove it or choose another --out")
    partial = dest.with_name(dest.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(archive) as source:
        for info in source.infolist():
            if info.is_dir():
                continue
            if not member_ok(info.filename):
                raise DownloadError(f"the input zip holds {info.filename!r}, not <Dataset>/<stem>.png")
            target = partial / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open(info) as member, open(target, "wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
    (partial / ".sha256").write_text(sha256 + "\n")
    if dest.exists():
        dest.rmdir()
    partial.replace(dest)
    return dest


def download_phase(server: str, token: str, phase: int, out: Path, *, everything: bool = False,
                   show_progress: bool = True, timeout: float = 60) -> Fetched:
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    server = server.rstrip("/")
    response = http.get(f"{server}/api/v1/phases/{phase}/data", timeout=timeout)
    if response.status_code != 200:
        try:
            answer = response.json()
            detail = answer.get("error") or answer.get("detail")
        except ValueError:
            detail = response.text[:200]
        if response.status_code == 404:
            detail = f"phase {phase} not found, or its data is not available yet"
        raise DownloadError(f"HTTP {response.status_code}: {detail}")
    listing = response.json()
    if listing.get("pending"):
        raise DownloadError("the platform is still preparing this phase's input-set download; try again in a minute")
    wanted = [f for f in listing["files"] if everything or f["kind"] in ("inputs", "landmarks")]
    out.mkdir(parents=True, exist_ok=True)
    paths = {f["kind"]: fetch_file(http, server, f, out, show_progress) for f in wanted if f["kind"] != "extra"}
    extras = [fetch_file(http, server, f, out, show_progress) for f in wanted if f["kind"] == "extra"]
    inputs = None
    if "inputs" in paths:
        entry = next(f for f in wanted if f["kind"] == "inputs")
        inputs = extract_inputs(paths["inputs"], out / "inputs", entry["sha256"])
    return Fetched(inputs=inputs, landmarks=paths.get("landmarks"), files=[*paths.values(), *extras], listing=listing)


def next_commands(fetched: Fetched) -> list[str]:
    inputs, landmarks = fetched.inputs or "inputs/", fetched.landmarks or "landmarks.csv"
    profile = fetched.listing.get("scoring_profile", "ntire2025-no-qalign")
    return [
        f"python -m scoring check --inputs {inputs} results.zip",
        f"python -m scoring score --inputs {inputs} --landmarks {landmarks} --restored results.zip"
        f" --weights weights/ --out out/ --profile {profile} --device auto",
    ]

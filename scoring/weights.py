"""Model weights: a manifest of every file, a loader that trusts nothing it has not hashed.

Scoring reads weights only from one directory. Each file is checked against its sha256:
the published checksum from the packaged manifest (``weights_manifest.json``) where one
is known, else the checksum pinned in the directory's own ``manifest.json`` when the
file was fetched or generated. Results record the sha256 of every file used and whether
all of them are the official ones, so the leaderboard can say when they are not.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

FETCH_HINT = "python -m scoring weights fetch {dir}"
TEST_HINT = "python -m scoring weights make-test {dir}"
LOCAL_MANIFEST = "manifest.json"

# Which files each model needs, by its name in the manifest.
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "niqe": ("niqe_pris_params.npz",),
    "clipiqa": ("RN50.pt",),
    "musiq": ("musiq_koniq_ckpt-e95806b9.pth",),
    "maniqa": ("ckpt_koniq10k.pt",),
    "qalign": ("one-align",),
    "adaface": ("adaface_ir50_ms1mv2.ckpt",),
    "fid": ("pt_inception-2015-12-05-6726825d.pth", "inception_FFHQ_512.pth"),
    "retinaface": ("detection_Resnet50_Final.pth",),
}


class WeightsError(RuntimeError):
    """Weights are missing or do not match their checksum; the message says what to run."""


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    url: str
    sha256: str | None  # None where no checksum is published; pinned locally on fetch
    sha256_prefix: str | None
    size: int | None
    note: str


def packaged_manifest() -> dict[str, ManifestEntry]:
    text = resources.files("scoring").joinpath("weights_manifest.json").read_text(encoding="utf-8")
    raw = json.loads(text)["files"]
    return {
        name: ManifestEntry(
            name=name,
            url=entry["url"],
            sha256=entry.get("sha256"),
            sha256_prefix=entry.get("sha256_prefix"),
            size=entry.get("size"),
            note=entry.get("note", ""),
        )
        for name, entry in raw.items()
    }


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    if path.is_dir():
        # A model stored as a folder (Q-Align's Hugging Face snapshot): hash of its files' hashes.
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(child.relative_to(path).as_posix().encode())
            digest.update(sha256_of(child).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class WeightStore:
    """A weights directory, with every file verified once per process before use."""

    _hash_cache: dict[tuple[str, float, int], str] = {}
    _lock = threading.Lock()

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.official = packaged_manifest()
        self.local = self._read_local_manifest()

    def _read_local_manifest(self) -> dict[str, Any]:
        path = self.directory / LOCAL_MANIFEST
        if not path.is_file():
            return {"kind": "unknown", "files": {}}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{path} is not valid JSON: {exc}") from None
        data.setdefault("files", {})
        return data

    @property
    def kind(self) -> str:
        """"test" for generated random weights, "official" or "unknown"."""
        return str(self.local.get("kind", "unknown"))

    def expected_sha256(self, name: str) -> str:
        if self.kind != "test":
            entry = self.official.get(name)
            if entry is not None and entry.sha256:
                return entry.sha256
        pinned = self.local["files"].get(name)
        if pinned:
            return str(pinned)
        raise WeightsError(
            f"no checksum is known for {name} in {self.directory}: run `{FETCH_HINT.format(dir=self.directory)}`"
            " (it pins the checksum of what it downloads)"
        )

    def path(self, name: str) -> Path:
        """The verified path of one weight file; raises WeightsError naming file and command."""
        path = self.directory / name
        if not path.exists():
            raise WeightsError(
                f"missing weight file {name} in {self.directory}: run `{FETCH_HINT.format(dir=self.directory)}`"
                f" where the internet is reachable (or `{TEST_HINT.format(dir=self.directory)}` for random"
                " test weights)"
            )
        actual = self.sha256(name)
        expected = self.expected_sha256(name)
        if actual != expected:
            raise WeightsError(
                f"{path} has sha256 {actual}, expected {expected}: the file is corrupt or not the right one;"
                f" delete it and run `{FETCH_HINT.format(dir=self.directory)}`"
            )
        return path

    def sha256(self, name: str) -> str:
        path = self.directory / name
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime, stat.st_size)
        with self._lock:
            cached = self._hash_cache.get(key)
        if cached is None:
            cached = sha256_of(path)
            with self._lock:
                self._hash_cache[key] = cached
        return cached

    def is_official(self, name: str) -> bool:
        entry = self.official.get(name)
        return bool(entry and entry.sha256 and self.sha256(name) == entry.sha256)

    def files_for(self, models: list[str] | tuple[str, ...]) -> list[str]:
        names: list[str] = []
        for model in models:
            names.extend(n for n in MODEL_FILES[model] if n not in names)
        return names

    def verify(self, models: list[str] | tuple[str, ...]) -> dict[str, str]:
        """Verify all files of the given models; returns name -> sha256."""
        return {name: self.sha256(self.path(name).name) for name in self.files_for(models)}


def verify_directory(directory: Path) -> list[dict[str, Any]]:
    """Status of every manifest file in a directory (for ``weights verify``)."""
    store = WeightStore(directory)
    rows: list[dict[str, Any]] = []
    for name in store.official:
        row: dict[str, Any] = {"file": name, "status": "missing", "sha256": None, "official": False}
        if (store.directory / name).exists():
            try:
                store.path(name)
                row.update(status="ok", sha256=store.sha256(name), official=store.is_official(name))
            except WeightsError as exc:
                row.update(status="bad", sha256=store.sha256(name), error=str(exc))
        rows.append(row)
    return rows


def fetch_weights(directory: Path, names: list[str] | None = None) -> list[str]:
    """Download the official files that are missing and pin their checksums.

    Needs the internet. A file whose published checksum is known must match it; a file
    without one is pinned in the directory's manifest as downloaded.
    """
    directory.mkdir(parents=True, exist_ok=True)
    manifest = packaged_manifest()
    store = WeightStore(directory)
    local = store.local
    if local.get("kind") == "test":
        raise WeightsError(f"{directory} holds test weights; fetch official weights into another directory")
    local["kind"] = "official"
    fetched: list[str] = []
    for name, entry in manifest.items():
        if names and name not in names:
            continue
        target = directory / name
        if target.exists():
            continue
        if entry.url.startswith("hf://"):
            _fetch_hf_snapshot(entry.url.removeprefix("hf://"), target)
        else:
            partial = target.with_suffix(target.suffix + ".part")
            with urllib.request.urlopen(entry.url, timeout=60) as response, open(partial, "wb") as out:  # noqa: S310
                while block := response.read(1 << 20):
                    out.write(block)
            os.replace(partial, target)
        digest = sha256_of(target)
        if entry.sha256 and digest != entry.sha256:
            target.unlink() if target.is_file() else None
            raise WeightsError(f"downloaded {name} has sha256 {digest}, expected {entry.sha256}")
        if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
            raise WeightsError(f"downloaded {name} has sha256 {digest}, expected prefix {entry.sha256_prefix}")
        local["files"][name] = digest
        fetched.append(name)
    (directory / LOCAL_MANIFEST).write_text(json.dumps(local, indent=2, sort_keys=True), encoding="utf-8")
    return fetched


def _fetch_hf_snapshot(repo_id: str, target: Path) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=repo_id, local_dir=str(target))

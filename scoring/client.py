"""The participant's command line: submit an archive, wait for it, read the leaderboard.

``python -m scoring submit --server URL --token KEY --phase ID results.zip --wait``
Uploads go straight to S3 in parts when the server has S3 storage, else as one streamed
POST; either way with a progress bar, and the file is never read into memory whole.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import requests

FINAL_STATES = {"scored", "rejected", "failed", "cancelled"}


class ClientError(RuntimeError):
    pass


class _MultipartBody:
    """A multipart/form-data body streamed from a file, with a known length (no chunked encoding)."""

    def __init__(self, path: Path, fields: dict[str, str], progress: Callable[[int], None]):
        self.boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        )
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="archive"; filename="{path.name}"\r\n'
                 "Content-Type: application/zip\r\n\r\n").encode()
        self._parts: list[bytes | BinaryIO] = [head, open(path, "rb"), f"\r\n--{self.boundary}--\r\n".encode()]  # noqa: SIM115
        self.len = len(head) + path.stat().st_size + len(self._parts[2])  # type: ignore[arg-type]
        self._progress = progress

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def read(self, size: int = -1) -> bytes:
        size = 1 << 20 if size is None or size < 0 else size
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                chunk, rest = part[:size], part[size:]
                if rest:
                    self._parts[0] = rest
                else:
                    self._parts.pop(0)
            else:
                chunk = part.read(size)
                if not chunk:
                    part.close()
                    self._parts.pop(0)
                    continue
            self._progress(len(chunk))
            return chunk
        return b""


class Client:
    def __init__(self, server: str, token: str, timeout: float = 60):
        self.server = server.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"
        self.timeout = timeout

    def _check(self, response: requests.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise ClientError(f"{response.status_code} from the server: {response.text[:300]}") from None
        if response.status_code >= 400:
            raise ClientError(data.get("error") or f"HTTP {response.status_code}")
        return data

    def submit(self, phase: int, archive: Path, description: str = "", show_progress: bool = True) -> int:
        from tqdm import tqdm

        size = archive.stat().st_size
        bar = tqdm(total=size, unit="B", unit_scale=True, desc="upload", disable=not show_progress)
        try:
            start = self._check(self.http.post(f"{self.server}/api/v1/phases/{phase}/uploads",
                                               json={"size": size, "description": description},
                                               timeout=self.timeout))
            if start.get("mode") == "multipart":
                parts = []
                with open(archive, "rb") as handle:
                    for part in start["parts"]:
                        data = handle.read(start["part_size"])
                        response = requests.put(part["url"], data=data, timeout=600)
                        if response.status_code != 200:
                            raise ClientError(f"part {part['number']} refused by storage: {response.status_code}")
                        parts.append({"number": part["number"], "etag": response.headers["ETag"]})
                        bar.update(len(data))
                done = self._check(self.http.post(self.server + start["finish_url"], json={"parts": parts},
                                                  timeout=self.timeout))
            else:
                body = _MultipartBody(archive, {"description": description}, bar.update)
                done = self._check(self.http.post(
                    f"{self.server}/api/v1/phases/{phase}/submissions", data=body,
                    headers={"Content-Type": body.content_type, "Content-Length": str(body.len)}, timeout=600,
                ))
        finally:
            bar.close()
        return int(done["id"])

    def status(self, submission: int) -> dict[str, Any]:
        return self._check(self.http.get(f"{self.server}/api/v1/submissions/{submission}", timeout=self.timeout))

    def wait(self, submission: int, timeout: float = 3600, interval: float = 2.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(submission)
            if status["state"] in FINAL_STATES:
                return status
            if time.monotonic() > deadline:
                raise ClientError(f"submission {submission} is still {status['state']} after {timeout:.0f} s")
            time.sleep(interval)

    def leaderboard(self, phase: int) -> dict[str, Any]:
        return self._check(self.http.get(f"{self.server}/api/v1/phases/{phase}/leaderboard", timeout=self.timeout))


def add_client_commands(sub: Any) -> None:
    for name, help_text in (("submit", "upload an archive to a phase"), ("status", "a submission's state"),
                            ("leaderboard", "a phase's leaderboard"),
                            ("download", "a phase's inputs and landmarks, verified and extracted")):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--server", default=os.environ.get("FR_SERVER", "http://127.0.0.1:8000"))
        parser.add_argument("--token", default=os.environ.get("FR_TOKEN"), help="API token (or FR_TOKEN)")
        parser.add_argument("--json", action="store_true")
        if name == "submit":
            parser.add_argument("--phase", type=int, required=True)
            parser.add_argument("archive")
            parser.add_argument("--description", default="")
            parser.add_argument("--wait", action="store_true", help="wait for the result")
        elif name == "status":
            parser.add_argument("submission", type=int)
        elif name == "download":
            parser.add_argument("--phase", type=int, required=True)
            parser.add_argument("--out", required=True, help="folder for the files (inputs/ is extracted in it)")
            parser.add_argument("--all", action="store_true", help="also the starting kit and the extra files")
        else:
            parser.add_argument("phase", type=int)


def _download(args: Any) -> int:
    from scoring.download import DownloadError, download_phase, next_commands

    try:
        fetched = download_phase(args.server, args.token, args.phase, Path(args.out), everything=args.all,
                                 show_progress=not args.json and sys.stderr.isatty())
    except (DownloadError, requests.RequestException, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    commands = next_commands(fetched)
    if args.json:
        print(json.dumps({"inputs": str(fetched.inputs) if fetched.inputs else None,
                          "landmarks": str(fetched.landmarks) if fetched.landmarks else None,
                          "files": [str(p) for p in fetched.files], "next": commands}, indent=2))
        return 0
    for path in fetched.files:
        print(f"verified {path}")
    if fetched.inputs:
        print(f"inputs extracted to {fetched.inputs}")
    print("next: restore the inputs into results.zip (<Dataset>/<stem>.png), then")
    for command in commands:
        print(f"  {command}")
    return 0


def run_client_command(args: Any) -> int:
    if not args.token:
        print("error: an API token is needed (--token or FR_TOKEN); see your account's API token page",
              file=sys.stderr)
        return 2
    if args.command == "download":
        return _download(args)
    client = Client(args.server, args.token)
    try:
        if args.command == "submit":
            submission = client.submit(args.phase, Path(args.archive), args.description,
                                       show_progress=not args.json and sys.stderr.isatty())
            result: dict[str, Any] = client.wait(submission) if args.wait else {"id": submission, "state": "submitted"}
        elif args.command == "status":
            result = client.status(args.submission)
        else:
            result = client.leaderboard(args.phase)
    except (ClientError, requests.RequestException, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.command == "leaderboard":
        for row in result.get("rows", []):
            print(f"{row['rank'] or '-':>4}  {row['team']:30} {row['total']:.4f}  failed {row['failed_images']}")
        if not result.get("visible", True):
            print(result.get("notice", ""))
    else:
        print(f"submission {result.get('id')}: {result.get('state')}")
        if result.get("result"):
            print(f"total {result['result']['total']:.4f}, failed identity {result['result']['failed_images']}")
        for line in result.get("log", [])[-5:]:
            print(f"  {line['state']}: {line['message'].splitlines()[0]}")
    return 0 if result.get("state") not in ("rejected", "failed") else 1

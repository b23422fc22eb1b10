"""The 450 validation inputs (about 106 MB) downloaded through the S3 path, as a participant gets them.

    .venv/bin/python bench/download_s3.py [--json-out FILE]

Starts an S3 server (SeaweedFS ``weed mini``, tests/support/s3.py) and a LiveStack "services" stack (PostgreSQL +
Redis, gunicorn, one Celery worker on the default queue) with S3 storage; creates a phase with the whole validation
set (``../shared/ntire2025/val`` and ``val_face.csv``, or FR_SHARED_DIR), waits for the worker to build the phase's
downloads, registers a participant, then times ``python -m scoring download --phase ID --out DIR`` (listing, the
presigned redirects, the input zip and the landmarks CSV streamed from S3 with their sha256 checked, the zip
extracted). Printed: the seconds of the phase set-up, of the build and of the download, the bytes and MB/s, and the
machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, load_average, machine, services_stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", help="also write the figures as JSON here")
    args = parser.parse_args()
    from tests.support.data_stack import built_files, registered_participant
    from tests.support.env import shared_dir, test_weights_dir
    from tests.support.s3 import SeaweedS3
    from tests.support.stack import wait_until

    shared = shared_dir() / "ntire2025"
    with tempfile.TemporaryDirectory(prefix="bench-download-") as scratch:
        root = Path(scratch)
        s3 = SeaweedS3(root / "s3")
        stack = services_stack(root / "stack", test_weights_dir(), {**s3.env(), "FR_PRELOAD_MODELS": "0"})
        try:
            stack.manage("migrate", "--noinput")
            stack.start_worker(queues="default")
            started = time.perf_counter()
            output = stack.manage("create_phase", "--challenge", "ntire", "--title", "NTIRE downloads", "--phase",
                                  "dev", "--profile", "ntire2025-dev", "--inputs", str(shared / "val"),
                                  "--landmarks", str(shared / "val_face.csv"), timeout=1200).stdout
            phase_id = int(output.split("phase id ")[1].split(":")[0])
            stored = time.perf_counter()
            wait_until(lambda: built_files(stack, phase_id) == 3, 1200, "the downloads to be built", interval=1)
            built = time.perf_counter()
            stack.start_web()
            _, token = registered_participant(stack, "dana")
            out = root / "data"
            begun = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "scoring", "download", "--server", stack.url, "--token",
                                   token, "--phase", str(phase_id), "--out", str(out), "--json"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=1200)
            seconds = time.perf_counter() - begun
            if done.returncode != 0:
                raise RuntimeError(done.stderr)
            pngs = list((out / "inputs").rglob("*.png"))
            size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
            figures = {
                "machine": machine(), "load": load_average(), "inputs": len(pngs),
                "phase_setup_s": round(stored - started, 1), "build_s": round(built - stored, 1),
                "download_s": round(seconds, 2), "downloaded_bytes": size,
                "download_MB_per_s": round(size / seconds / 1e6, 1),
            }
        finally:
            stack.close()
            s3.stop()
    print(json.dumps(figures, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

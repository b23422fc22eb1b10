"""A 1 GiB archive through the presigned upload path: throughput, and the web processes' memory.

    .venv/bin/python bench/upload_1gb.py [--mib 1024] [--json-out FILE]

Starts an S3 server (SeaweedFS ``weed mini``, tests/support/s3.py) and a LiveStack "services"
stack (PostgreSQL + Redis, gunicorn with 2 workers, on loopback; no Celery worker: the archive
is not scored) with S3 storage, creates a phase, a user, a team and an API token, writes a
``--mib`` MiB file of incompressible-looking bytes, then measures, one after the other in
this run:

* ``platform`` -- ``python -m scoring submit`` (the participant CLI): start (presigned part
  URLs from the web), one PUT per part straight to S3, finish (the web completes the
  multipart upload and checks the stored size); the submission exists at the end;
* ``direct``   -- the same file with boto3 straight to the same bucket, one part at a time of
  the same part size (``TransferConfig(max_concurrency=1)``), the floor for this machine.

Printed: seconds and MiB/s of each and their ratio; the peak RSS (VmHWM) and RSS of the
gunicorn master and each worker before and after the platform upload, and the CLI's own peak
RSS. The objects and the database are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, load_average, machine, services_stack  # noqa: E402

# The CLI, run so that it reports its own peak RSS (KiB) on its last stderr line.
CLI = ("import resource, runpy, sys\n"
       "sys.argv = ['scoring', *sys.argv[1:]]\n"
       "try:\n    runpy.run_module('scoring', run_name='__main__', alter_sys=True)\n"
       "finally:\n    print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of a process, KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(("VmHWM", "VmRSS")):
                key, amount = line.split(":", 1)
                values[key] = int(amount.split()[0])
    return values


def web_memory(master: int) -> dict[str, dict[str, int]]:
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                              text=True).stdout.split()]
    return {f"master {master}": proc_status(master), **{f"worker {pid}": proc_status(pid) for pid in workers}}


def write_archive(path: Path, mib: int) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB, as tests/platform/test_production_stack.py writes it
    with open(path, "wb") as handle:
        for index in range(mib):
            handle.write(block[index % 256:] + block[:index % 256])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="archive size in MiB")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    from tests.support.env import subset_of_validation, test_weights_dir
    from tests.support.s3 import SeaweedS3
    from tests.support.stack import WebUser

    print(f"machine: {machine()}; {load_average()}")
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    s3 = SeaweedS3(work / "s3")
    stack = services_stack(work, test_weights_dir(), {**s3.env(), "FR_UPLOAD_RATE_LIMIT": "1000"})
    report: dict[str, Any] = {"machine": machine(), "mib": args.mib}
    try:
        inputs, landmarks = subset_of_validation(work, per_dataset=1)
        stack.manage("migrate", "--noinput")
        output = stack.manage("create_phase", "--challenge", "bench", "--title", "Upload bench", "--phase", "dev",
                              "--profile", "ntire2025-dev", "--inputs", str(inputs), "--landmarks",
                              str(landmarks)).stdout
        phase_id = int(re.search(r"phase id (\d+)", output).group(1))
        web = stack.start_web()
        user = WebUser(stack.url)
        user.sign_up("uploader")
        user.create_team("bench", "Team Upload")
        page = user.http.get(f"{user.base}/accounts/token/", timeout=30).text
        token = re.search(r'<pre id="token">([0-9a-f]+)</pre>', page).group(1)
        archive = work / "big.zip"
        write_archive(archive, args.mib)
        size = archive.stat().st_size

        before = web_memory(web.pid)
        print(f"\nplatform: python -m scoring submit ... ({load_average()})", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CLI, "submit", "--server", stack.url, "--token", token,
                               "--phase", str(phase_id), str(archive), "--json"], cwd=ROOT, capture_output=True,
                              text=True, timeout=900)
        platform_s = time.perf_counter() - started
        peak = re.search(r"PEAK_RSS_KIB (\d+)", done.stderr)
        cli_peak_kib = int(peak.group(1)) if peak else 0
        if done.returncode != 0:
            raise SystemExit(f"submit failed: {done.stderr}\n{stack.log('web')[-3000:]}")
        submission = json.loads(done.stdout)["id"]
        after = web_memory(web.pid)
        key = json.loads(stack.shell(
            "import json; from submissions.models import Submission; "
            f"print(json.dumps(Submission.objects.get(pk={submission}).archive.name))").strip().splitlines()[-1])
        client = s3.client()
        stored = client.head_object(Bucket=s3.bucket, Key=key)["ContentLength"]
        assert stored == size, (stored, size)
        print(f"  {platform_s:.1f} s, {args.mib / platform_s:.0f} MiB/s; submission {submission}, {stored} bytes "
              f"in the bucket ({load_average()})", flush=True)

        import boto3.s3.transfer

        config = boto3.s3.transfer.TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20,
                                                  max_concurrency=1, use_threads=False)
        print(f"direct: boto3 upload_file, 8 MiB parts, one at a time ({load_average()})", flush=True)
        started = time.perf_counter()
        client.upload_file(str(archive), s3.bucket, "bench/direct.zip", Config=config)
        direct_s = time.perf_counter() - started
        print(f"  {direct_s:.1f} s, {args.mib / direct_s:.0f} MiB/s ({load_average()})", flush=True)

        print(f"\nresults on {machine()}")
        print(f"  platform presigned path (CLI): {platform_s:7.1f} s {args.mib / platform_s:6.0f} MiB/s")
        print(f"  direct boto3 to the same S3:   {direct_s:7.1f} s {args.mib / direct_s:6.0f} MiB/s")
        print(f"  ratio platform/direct throughput: {direct_s / platform_s:.2f}")
        print(f"  CLI (python -m scoring submit) peak RSS {cli_peak_kib / 1024:.0f} MiB")
        print("  web processes, VmHWM (peak) and VmRSS, MiB, before -> after the platform upload:")
        total_before = sum(v["VmHWM"] for v in before.values())
        total_after = sum(after.get(k, {"VmHWM": 0})["VmHWM"] for k in before)
        for name in before:
            b, a = before[name], after.get(name, {"VmHWM": 0, "VmRSS": 0})
            print(f"    {name:14} peak {b['VmHWM'] / 1024:6.1f} -> {a['VmHWM'] / 1024:6.1f}"
                  f"   rss {b['VmRSS'] / 1024:6.1f} -> {a['VmRSS'] / 1024:6.1f}")
        print(f"    {'sum':14} peak {total_before / 1024:6.1f} -> {total_after / 1024:6.1f} "
              f"(+{(total_after - total_before) / 1024:.1f} MiB for a {args.mib} MiB archive)")
        report.update(platform_s=platform_s, direct_s=direct_s, web_before=before, web_after=after,
                      cli_peak_kib=cli_peak_kib, load=load_average())
        for name in (key, "bench/direct.zip"):
            client.delete_object(Bucket=s3.bucket, Key=name)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    finally:
        stack.close()
        s3.stop()
        import shutil

        import redis

        redis.Redis.from_url(stack.env["CELERY_BROKER_URL"]).flushdb()  # the queued scoring task
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

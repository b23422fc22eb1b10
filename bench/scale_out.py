"""Scale-out: the same scoring jobs on one Celery worker, then on two, on the same queue.

    .venv/bin/python bench/scale_out.py [--submissions 6] [--per-dataset 1] [--profile ntire2025-dev]
                                        [--configs 1,2] [--json-out FILE]

One LiveStack "services" stack (PostgreSQL + Redis, gunicorn, local file storage) with a phase
whose input set is the first ``--per-dataset`` validation image(s) of each of the five datasets
(5 images by default), scored with ``--profile`` and the test weights. For each configuration
(``1``: one worker; ``2``: two workers; ``2t1``: two workers with one torch/OpenMP thread each),
the workers are started on the same ``default,scoring`` queues (``-c 1`` each, as deployed),
warmed up (one submission per worker, so that every worker has its models loaded), and then
``--submissions`` uploads of the same archive (the inputs themselves) go through the API one
right after the other. Measured: the wall time from the first upload to the last final state,
which worker scored what, and each run's scoring seconds (started -> finished, from the
database). The configurations run one after the other in this process, on the same stack.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine, services_stack  # noqa: E402

FINAL = {"scored", "rejected", "failed", "cancelled"}


def db_rows(stack, ids: list[int]) -> list[dict[str, Any]]:
    code = ("import json; from submissions.models import Submission; print(json.dumps([{'id': s.pk, 'state': s.state, "
            "'worker': s.worker, 'created': s.created_at.isoformat(), 'started': s.started_at.isoformat(), "
            "'finished': s.finished_at.isoformat(), 'attempts': s.attempts} for s in "
            f"Submission.objects.filter(pk__in={ids!r}).order_by('pk')]))")
    return json.loads(stack.shell(code).strip().splitlines()[-1])


def wait_final(client, ids: list[int], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"submissions {sorted(pending)} not final after {timeout:.0f} s")
        for sid in list(pending):
            if client.status(sid)["state"] in FINAL:
                pending.discard(sid)
        if pending:
            time.sleep(0.5)
    return time.perf_counter()


def wait_ready(stack, names: list[str], timeout: float = 180) -> None:
    from tests.support.stack import wait_until

    for name in names:
        wait_until(lambda name=name: re.search(r"\bready\.", stack.log(name)), timeout, f"worker {name}")


def run_config(stack, client, phase_id: int, archive: Path, config: str, count: int) -> dict[str, Any]:
    workers = int(config[0])
    threads = config.split("t", 1)[1] if "t" in config else None
    names = [f"w{config}-{i}" for i in range(workers)]
    saved = dict(stack.env)
    if threads:
        stack.env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    try:
        for name in names:
            stack.start_worker(name)
    finally:
        stack.env.clear()
        stack.env.update(saved)
    wait_ready(stack, names)
    # Warm-up: until every worker has scored one (its models loaded, its input cache filled).
    warm: list[int] = []
    for _ in range(3):
        batch = [client.submit(phase_id, archive, "warm-up", show_progress=False) for _ in range(workers)]
        wait_final(client, batch, 600)
        warm += batch
        if len({r["worker"] for r in db_rows(stack, warm)}) == workers:
            break
    print(f"  {config}: {workers} worker(s) warm ({load_average()})", flush=True)

    load_before = load_average()
    started = time.perf_counter()
    ids = [client.submit(phase_id, archive, f"bench {config} {i}", show_progress=False) for i in range(count)]
    ended = wait_final(client, ids, 1200)
    rows = db_rows(stack, ids)
    for name in names:
        stack.kill(name, 15)
    wall = ended - started
    runs = [(datetime.fromisoformat(r["finished"]) - datetime.fromisoformat(r["started"])).total_seconds()
            for r in rows]
    per_worker: dict[str, int] = {}
    for row in rows:
        per_worker[row["worker"]] = per_worker.get(row["worker"], 0) + 1
    return {"config": config, "workers": workers, "threads": threads or "default", "wall_s": wall,
            "per_minute": count / wall * 60, "states": sorted({r["state"] for r in rows}),
            "run_s_median": statistics.median(runs), "run_s_mean": statistics.fmean(runs),
            "per_worker": sorted(per_worker.values(), reverse=True), "load_before": load_before,
            "load_after": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=6)
    parser.add_argument("--per-dataset", type=int, default=1)
    parser.add_argument("--profile", default="ntire2025-dev")
    parser.add_argument("--configs", default="1,2", help="comma-separated: 1, 2, 2t1 (two workers, 1 thread each)")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    import torch

    from scoring.client import Client
    from tests.support.archives import zip_folder
    from tests.support.env import subset_of_validation, test_weights_dir
    from tests.support.stack import WebUser

    print(f"machine: {machine()}; torch {torch.__version__} default threads {torch.get_num_threads()}; "
          f"{load_average()}")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    stack = services_stack(work, test_weights_dir(), {"FR_UPLOAD_RATE_LIMIT": "1000"})
    results = []
    try:
        inputs, landmarks = subset_of_validation(work, per_dataset=args.per_dataset)
        images = len(list(inputs.glob("*/*.png")))
        stack.manage("migrate", "--noinput")
        output = stack.manage("create_phase", "--challenge", "bench", "--title", "Scale bench", "--phase", "dev",
                              "--profile", args.profile, "--inputs", str(inputs), "--landmarks", str(landmarks),
                              "--max-per-day", "500", "--max-total", "500", "--max-running", "500").stdout
        phase_id = int(re.search(r"phase id (\d+)", output).group(1))
        stack.start_web()
        user = WebUser(stack.url)
        user.sign_up("scaler")
        user.create_team("bench", "Team Scale")
        page = user.http.get(f"{user.base}/accounts/token/", timeout=30).text
        client = Client(stack.url, re.search(r'<pre id="token">([0-9a-f]+)</pre>', page).group(1))
        archive = zip_folder(inputs, work / "restored.zip")
        print(f"{args.submissions} submissions of {images} images each, profile {args.profile}", flush=True)
        for config in args.configs.split(","):
            results.append(run_config(stack, client, phase_id, archive, config.strip(), args.submissions))
            r = results[-1]
            print(f"  {config}: {r['wall_s']:.1f} s, {r['per_minute']:.2f} submissions/min ({r['load_after']})",
                  flush=True)
    finally:
        stack.close()
        import shutil

        import redis

        redis.Redis.from_url(stack.env["CELERY_BROKER_URL"]).flushdb()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nresults on {machine()}, {os.cpu_count()} CPUs")
    print(f"  {'config':7} {'workers':>7} {'threads':>8} {'wall s':>8} {'subs/min':>9} {'run s (median)':>15} "
          f"{'per worker':>12}  states  load before -> after")
    for r in results:
        print(f"  {r['config']:7} {r['workers']:7d} {r['threads']:>8} {r['wall_s']:8.1f} {r['per_minute']:9.2f} "
              f"{r['run_s_median']:15.1f} {str(r['per_worker']):>12}  {','.join(r['states'])}  "
              f"{r['load_before']} -> {r['load_after']}")
    base = results[0] if results else None
    for r in results[1:]:
        print(f"  throughput {r['config']} / {base['config']}: {r['per_minute'] / base['per_minute']:.2f}x; "
              f"one run takes {r['run_s_median'] / base['run_s_median']:.2f}x as long")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine(), "results": results}, indent=2),
                                       encoding="utf-8")


if __name__ == "__main__":
    main()

"""Leaderboard under load: gunicorn on loopback against a seeded PostgreSQL database, driven by wrk.

    .venv/bin/python bench/leaderboard_load.py [--teams 1000] [--per-team 10] [--duration 30]
        [--c8-duration 10] [--workers 2] [--before 0cb7b20] [--profile-only] [--json-out FILE]

Creates a fresh database ``fr_bench_lb_<hex>`` on the local PostgreSQL (dropped at the end), migrates
it, and seeds it with ``bulk_create``: one challenge, one phase with the ``ntire2025`` profile (all
six metric columns), ``--teams`` teams (one baseline, one in 200 disqualified) with ``--per-team``
scored submissions each, every one with its SubmissionResult and five DatasetScore rows (the five
NTIRE datasets); 15% of the results fail more than 10 identity tests. (ImageScore rows are not
seeded: no leaderboard query reads them.)

Gunicorn servers (``--workers`` sync workers each, loopback only) run side by side on that database:

* ``uncached`` -- this working tree with ``FR_LEADERBOARD_CACHE_SECONDS=0``: every request
  builds the board (the queries, ranking, template / JSON encoding);
* ``cached``   -- this working tree as configured by default (boards cached per version, the
  version read with the phase in one query; a page of 100 teams; the JSON gzipped once per version);
* ``before``   -- with ``--before REF`` (default ``0cb7b20``: the whole board in one page, inline chart
  data, the version read by an aggregate query): a copy of this working tree in which the files of
  the leaderboard path (``BASELINE_FILES``) are replaced by their version at REF.

Endpoints: ``html`` (the first page, as a visitor without a session sees it), ``html-member`` (the
same page signed in as the owner of a team on page 6: their rank and page are shown), ``json`` (the whole
board, 1,000 rows, without compression, as ``curl`` asks) and ``json-gz`` (the same with
``Accept-Encoding: gzip``, as browsers and ``requests`` ask). For each endpoint and each concurrency
the servers are measured one right after the other: ``wrk -t2 -c16 -d<duration>s`` (and ``-c8``)
with a small Lua script that prints p50/p95/p99 (wrk's own ``--latency`` shows no p95).
Before that: the single-request latency (one connection, sequential), and for the cached server
the first request after a new result arrives (a cache miss). Last, an in-process profile of
one board: queries, SQL time, selector, template rendering, JSON encoding, gzip, charts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, load_average, machine  # noqa: E402

ADMIN_URL = os.environ.get("FR_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
BROKER_URL = "redis://127.0.0.1:6379/15"  # never contacted: no request here sends a task
BASELINE_FILES = [
    "platform/leaderboard/selectors.py",
    "platform/leaderboard/views.py",
    "platform/submissions/api.py",
    "platform/frplatform/urls.py",
    "templates/leaderboard.html",
    "static/charts.js",
]
TREE_PARTS = ["platform", "templates", "static", "scoring", "manage.py"]
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, \"errors\": %d, \"status_errors\": %d, " ..
    "\"timeouts\": %d, \"p50_us\": %d, \"p95_us\": %d, \"p99_us\": %d, \"mean_us\": %.1f, \"max_us\": %d}\n",
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.status + e.timeout,
    e.status, e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max))
end
"""


# --- database -----------------------------------------------------------------------------------
def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql)


def django_setup(database_url: str, var_dir: Path) -> None:
    os.environ.update({"DATABASE_URL": database_url, "CELERY_BROKER_URL": BROKER_URL, "FR_VAR_DIR": str(var_dir),
                       "DJANGO_SETTINGS_MODULE": "frplatform.settings"})
    import django

    django.setup()


def seed(teams: int, per_team: int, rng: random.Random) -> tuple[Any, dict[str, int]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from competitions.services import create_challenge, create_phase
    from scoring.profile import NTIRE2025_DATASET_SIZES, ScoringProfile
    from submissions.models import DatasetScore, Submission, SubmissionResult
    from teams.models import Team

    started = time.perf_counter()
    orga = User.objects.create_user("orga")
    users = User.objects.bulk_create([User(username=f"user{i:05d}", password="!") for i in range(teams)])
    challenge = create_challenge(slug="bench", title="Leaderboard benchmark", organizers=[orga])
    phase = create_phase(challenge=challenge, slug="test", name="Test", scoring_profile="ntire2025",
                         opens_at=timezone.now() - timedelta(days=30))
    profile = ScoringProfile.from_dict(phase.profile_snapshot)
    team_rows = Team.objects.bulk_create([
        Team(challenge=challenge, name=f"Team {i:05d}", created_by=users[i], is_baseline=i == 0,
             disqualified=i % 200 == 199)
        for i in range(teams)
    ])
    now = timezone.now()
    submissions = Submission.objects.bulk_create([
        Submission(phase=phase, team=team, submitted_by=team.created_by, archive=f"submissions/bench/{team.pk}-{k}.zip",
                   archive_size=rng.randrange(50, 400) << 20, archive_sha256=secrets.token_hex(32),
                   state=Submission.State.SCORED, started_at=now, finished_at=now, worker="bench@host",
                   attempts=1, progress_done=450, progress_total=450)
        for team in team_rows for k in range(per_team)
    ], batch_size=2000)
    with connection.cursor() as cursor:  # spread the submission times over the last ~3 weeks
        cursor.execute("UPDATE submissions_submission SET created_at = now() - (%s - id) * interval '2 minutes' "
                       "WHERE phase_id = %s", [max(s.pk for s in submissions), phase.pk])
    weights = {name: secrets.token_hex(32) for name in (
        "RN50.pt", "ckpt_koniq10k.pt", "musiq_koniq_ckpt-e95806b9.pth", "niqe_pris_params.npz",
        "adaface_ir50_ms1mv2.ckpt", "pt_inception-2015-12-05-6726825d.pth", "inception_FFHQ_512.pth")}

    def metrics() -> dict[str, float]:
        return {"clipiqa": rng.uniform(0.3, 0.8), "maniqa": rng.uniform(0.3, 0.7), "musiq": rng.uniform(40, 75),
                "qalign": rng.uniform(2, 4.5), "niqe": rng.uniform(3, 8), "fid": rng.uniform(20, 120)}

    results, per_dataset = [], []
    for submission in submissions:
        overall = metrics()
        terms = {t.metric: t.contribution(overall[t.metric]) for t in profile.terms}
        failed = rng.randrange(11, 60) if rng.random() < 0.15 else rng.randrange(0, 11)
        results.append(SubmissionResult(
            submission=submission, total=sum(terms.values()), failed_count=failed, valid=failed <= 10,
            id_similarity=rng.uniform(0.3, 0.9), metrics=overall, terms=terms, profile=phase.profile_snapshot,
            weights=weights, official_weights=True, versions={"scoring": "0.1.0", "pyiqa": "0.1.13",
                                                              "torch": "2.4.1", "python": "3.11.7"},
            device="cuda:0", timings={"load_models": 0.0, "read": 3.1, "identity": 4.2, "clipiqa": 5.0,
                                      "musiq": 9.9, "fid": 0.2},
        ))
        per_dataset.append([(name, size, metrics()) for name, size in NTIRE2025_DATASET_SIZES.items()])
    results = SubmissionResult.objects.bulk_create(results, batch_size=2000)
    DatasetScore.objects.bulk_create([
        DatasetScore(result=result, dataset=name, image_count=size, metrics=values,
                     id_similarity=rng.uniform(0.3, 0.9), failed_count=rng.randrange(0, 5))
        for result, rows in zip(results, per_dataset) for name, size, values in rows
    ], batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    counts = {"teams": Team.objects.count(), "submissions": Submission.objects.count(),
              "results": SubmissionResult.objects.count(), "dataset_rows": DatasetScore.objects.count(),
              "seconds": round(time.perf_counter() - started, 1)}
    return phase, counts


def member_cookie(phase) -> str:
    """A signed-in session of the owner of a team in the middle of the board (page 6), as a Cookie header."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from teams.models import Membership, Team

    team = Team.objects.filter(challenge=phase.challenge_id, disqualified=False).order_by("name")[500]
    Membership.objects.get_or_create(team=team, user=team.created_by, challenge_id=phase.challenge_id,
                                     defaults={"is_owner": True})
    session = SessionStore()
    session.update({SESSION_KEY: str(team.created_by.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
                    HASH_SESSION_KEY: team.created_by.get_session_auth_hash()})
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def add_result(phase, rng: random.Random) -> None:
    """A new scored submission of a random team, as the worker writes it (changes the board)."""
    from django.db import transaction

    from scoring.profile import NTIRE2025_DATASET_SIZES
    from submissions.models import DatasetScore, Submission, SubmissionResult
    from teams.models import Team

    team = Team.objects.filter(challenge=phase.challenge_id).order_by("?").first()
    with transaction.atomic():
        submission = Submission.objects.create(phase=phase, team=team, submitted_by=team.created_by,
                                               archive="submissions/bench/new.zip", state=Submission.State.SCORED)
        values = {"clipiqa": 0.9, "maniqa": 0.8, "musiq": 80.0, "qalign": 4.8, "niqe": 2.0, "fid": 10.0}
        result = SubmissionResult.objects.create(
            submission=submission, total=rng.uniform(2.5, 3.5), failed_count=0, valid=True, id_similarity=0.9,
            metrics=values, terms={}, profile=phase.profile_snapshot, weights={}, official_weights=True,
            versions={}, device="cpu")
        DatasetScore.objects.bulk_create(
            DatasetScore(result=result, dataset=name, image_count=size, metrics=values, id_similarity=0.9,
                         failed_count=0) for name, size in NTIRE2025_DATASET_SIZES.items())


# --- servers ------------------------------------------------------------------------------------
def baseline_tree(ref: str, target: Path) -> Path | None:
    """This working tree with BASELINE_FILES at ``ref``; None when they are all the same."""
    changed = []
    for path in BASELINE_FILES:
        old = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, capture_output=True, check=True).stdout
        if old != (ROOT / path).read_bytes():
            changed.append((path, old))
    if not changed:
        return None
    for part in TREE_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / part)
    for path, old in changed:
        (target / path).write_bytes(old)
    print(f"baseline tree {target}: {', '.join(p for p, _ in changed)} at {ref}")
    return target


class Server:
    def __init__(self, name: str, tree: Path, env: dict[str, str], workers: int, logs: Path):
        from tests.support.stack import free_port, wait_until

        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(logs / f"gunicorn-{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "frplatform.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--timeout", "120"],
            cwd=tree / "platform", env={**env, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'platform'}"},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: requests.get(f"{self.url}/healthz", timeout=2).ok, 60, f"gunicorn ({name})")

    def stop(self) -> None:
        from tests.support.stack import stop_process_group

        stop_process_group(self.process)
        self.log.close()


def sequential_ms(url: str, count: int, headers: dict[str, str] | None = None) -> list[float]:
    session = requests.Session()
    times = []
    for _ in range(count):
        tick = time.perf_counter()
        response = session.get(url, timeout=60, headers=headers or {})
        times.append((time.perf_counter() - tick) * 1000)
        response.raise_for_status()
    return times


def wrk(url: str, connections: int, seconds: int, threads: int, lua: Path,
        headers: dict[str, str] | None = None) -> dict[str, Any]:
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    done = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
                           "--latency", "-s", str(lua), *extra, url], capture_output=True, text=True,
                          timeout=seconds + 90)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    stats = json.loads(line[len("WRKJSON "):])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


# --- in-process profile --------------------------------------------------------------------------
Endpoints = dict[str, tuple[str, dict[str, str]]]  # name -> (path, request headers)


def profile(phase, endpoints: Endpoints) -> list[dict[str, Any]]:
    """Where one board's time goes in this tree (built in-process, three times), then whole requests through
    the views (django.test.Client): the first after a change (miss) and the next ones (hit)."""
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from leaderboard import cache as board_cache
    from leaderboard import http, selectors, views
    from leaderboard.charts import leaderboard_charts

    samples: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    queries = 0

    def timed(name: str, compute):
        tick = time.perf_counter()
        value = compute()
        samples.setdefault(name, []).append((time.perf_counter() - tick) * 1000)
        return value

    for _ in range(3):
        board_cache.clear_cache()
        with CaptureQueriesContext(connection) as captured:
            board = timed("selector_ms", lambda: selectors.phase_leaderboard(phase))
        samples.setdefault("sql_ms", []).append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
        queries = len(captured)
        page = board.page(1)
        sizes["page_html_kib"] = len(timed("page_html_ms", partial(views.page_html, page))) // 1024
        sizes["json_kib"] = len(timed("json_ms", board.json_bytes)) // 1024
        sizes["json_gz_kib"] = len(timed("gzip_ms", partial(http.json_gzip, board))) // 1024
        sizes["charts_kib"] = len(json.dumps(timed("charts_ms", partial(leaderboard_charts, page)))) // 1024
    rows = [{"tree": "build", "queries": queries, **sizes, **{k: statistics.median(v) for k, v in samples.items()}}]

    client = Client(HTTP_HOST="127.0.0.1")
    for kind, (path, headers) in endpoints.items():
        extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
        for what in ("miss", "hit"):
            times = []
            for _ in range(3 if what == "miss" else 10):
                if what == "miss":
                    board_cache.clear_cache()
                    cache.clear()
                with CaptureQueriesContext(connection) as captured:
                    tick = time.perf_counter()
                    response = client.get(path, **extra)
                    times.append((time.perf_counter() - tick) * 1000)
                assert response.status_code == 200, response.status_code
            rows.append({"tree": f"view {kind} {what}", "queries": len(captured), "ms": statistics.median(times),
                         "kib": len(response.content) // 1024})
    return rows


def print_profile(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    print(f"\nin-process profile ({load_average()})")
    for row in rows:
        if "ms" in row:
            print(f"  {row['tree']:18} {row['queries']} queries, {row['ms']:.1f} ms ({row['kib']} KiB)")
            continue
        print(f"  board build: {row['queries']} queries, SQL {row['sql_ms']:.1f} ms,"
              f" selector {row['selector_ms']:.1f} ms; page 1 HTML {row['page_html_ms']:.1f} ms"
              f" ({row['page_html_kib']} KiB); JSON {row['json_ms']:.1f} ms"
              f" ({row['json_kib']} KiB), gzip {row['gzip_ms']:.1f} ms ({row['json_gz_kib']} KiB); page 1 charts"
              f" {row['charts_ms']:.1f} ms ({row['charts_kib']} KiB)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, default=1000)
    parser.add_argument("--per-team", type=int, default=10)
    parser.add_argument("--duration", type=int, default=30, help="seconds of each wrk -c16 run")
    parser.add_argument("--c8-duration", type=int, default=10, help="seconds of each wrk -c8 run (0: skip)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers per server")
    # 0cb7b20: the last commit before the board version counter, the pages and the gzipped JSON.
    parser.add_argument("--before", default="0cb7b20", help="also run the BASELINE_FILES of this commit ('': no)")
    parser.add_argument("--profile-only", action="store_true", help="seed, then only the in-process profile")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    print(f"machine: {machine()}; {load_average()}")
    work = Path(tempfile.mkdtemp(prefix="bench-leaderboard-"))
    db_name = f"fr_bench_lb_{secrets.token_hex(4)}"
    admin(f'CREATE DATABASE "{db_name}"')
    servers: list[Server] = []
    report: dict[str, Any] = {"machine": machine()}
    try:
        database_url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{db_name}"
        env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": BROKER_URL,
               "FR_VAR_DIR": str(work / "var"), "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
        django_setup(database_url, work / "var")
        rng = random.Random(20250401)
        phase, counts = seed(args.teams, args.per_team, rng)
        report["seeded"] = counts
        print(f"database {db_name}: {counts}")

        baseline = baseline_tree(args.before, work / "baseline") if args.before else None
        board = f"/c/bench/p/{phase.slug}"
        endpoints: Endpoints = {"html": (f"{board}/leaderboard/", {}),
                                "html-member": (f"{board}/leaderboard/", {"Cookie": member_cookie(phase)}),
                                "json": (f"{board}/leaderboard.json", {}),
                                "json-gz": (f"{board}/leaderboard.json", {"Accept-Encoding": "gzip"})}
        if args.profile_only:
            print_profile(profile(phase, endpoints))
            return
        variants = ([("before", baseline, {})] if baseline else []) + [
            ("uncached", ROOT, {"FR_LEADERBOARD_CACHE_SECONDS": "0"}), ("cached", ROOT, {})]
        servers = [Server(name, tree, {**env, **extra}, args.workers, work) for name, tree, extra in variants]
        for server in servers:
            for path, headers in endpoints.values():
                sequential_ms(server.url + path, 4, headers)  # warm both workers (imports, connections, caches)

        print(f"\nsingle requests, one connection (ms; {load_average()})")
        single: list[dict[str, Any]] = []
        for kind, (path, headers) in endpoints.items():
            for server in servers:
                times = sequential_ms(server.url + path, 10 if server.name != "uncached" else 4, headers)
                single.append({"tree": server.name, "endpoint": kind, "what": "steady",
                               "median_ms": statistics.median(times), "min_ms": min(times)})
            cached = next(s for s in servers if s.name == "cached")
            misses = []
            for _ in range(3):
                add_result(phase, rng)
                misses.append(sequential_ms(cached.url + path, 1, headers)[0])
            single.append({"tree": "cached", "endpoint": kind, "what": "first after a new result",
                           "median_ms": statistics.median(misses), "min_ms": min(misses)})
        for row in single:
            print(f"  {row['tree']:9} {row['endpoint']:5} {row['what']:26} median {row['median_ms']:8.1f}"
                  f"  min {row['min_ms']:8.1f}")
        report["single"] = single
        for server in servers:  # both workers of each server on the latest version again
            for path, headers in endpoints.values():
                sequential_ms(server.url + path, 4, headers)

        lua = work / "percentiles.lua"
        lua.write_text(WRK_LUA)
        runs: list[dict[str, Any]] = []
        plan = [(16, args.duration)] + ([(8, args.c8_duration)] if args.c8_duration else [])
        print(f"\nwrk -t{args.threads}, gunicorn {args.workers} sync workers per server")
        print(f"  {'tree':9} {'endpoint':8} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
              f" {'KiB/resp':>8} {'errors':>6}  load average after")
        for connections, seconds in plan:
            for kind, (path, headers) in endpoints.items():
                for server in servers:
                    stats = wrk(server.url + path, connections, seconds, args.threads, lua, headers)
                    stats.update(tree=server.name, endpoint=kind, connections=connections, seconds=seconds,
                                 load=load_average())
                    runs.append(stats)
                    print(f"  {server.name:9} {kind:8} {connections:5d} {stats['rps']:8.1f}"
                          f" {stats['p50_us'] / 1000:8.1f} {stats['p95_us'] / 1000:8.1f}"
                          f" {stats['p99_us'] / 1000:8.1f} {stats['bytes'] / max(stats['requests'], 1) / 1024:8.0f}"
                          f" {stats['errors']:6d}"
                          f"  {stats['load']}", flush=True)
        report["wrk"] = runs
        reference = "before" if baseline else "uncached"
        print(f"\nagainst {reference}")
        for connections, _ in plan:
            for kind in endpoints:
                old = next(r for r in runs if r["tree"] == reference and r["endpoint"] == kind
                           and r["connections"] == connections)
                for server in servers:
                    if server.name == reference:
                        continue
                    new = next(r for r in runs if r["tree"] == server.name and r["endpoint"] == kind
                               and r["connections"] == connections)
                    speedup = new["rps"] / max(old["rps"], 1e-9)
                    print(f"  {kind:5} c{connections:<3} {server.name:9} req/s x{speedup:.1f}, "
                          f"p95 {old['p95_us'] / 1000:.1f} -> {new['p95_us'] / 1000:.1f} ms")

        for server in servers:
            server.stop()
        servers = []
        report["profile"] = print_profile(profile(phase, endpoints))
        print(f"\ndone; {load_average()}")
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    finally:
        for server in servers:
            server.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110 - Django may not be set up yet
            pass
        admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The production stack as separate real processes: gunicorn, Celery workers, PostgreSQL,
Redis and an S3 server (SeaweedFS). Uploads go through presigned URLs; workers die and
services restart under load, and no submission is stranded, lost or scored twice."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import requests

from tests.support.archives import zip_folder
from tests.support.csp import CSP_LISTENER
from tests.support.env import ROOT, subset_of_validation
from tests.support.s3 import SeaweedS3
from tests.support.stack import LiveStack, WebUser, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


def make_stack(tmp_path, weights_dir, s3=None, **env) -> LiveStack:
    extra = {key: str(value) for key, value in env.items()}
    if s3 is not None:
        extra.update(s3.env())
    return LiveStack("services", tmp_path / "stack", weights_dir, extra_env=extra)


def set_up_phase(stack: LiveStack, tmp_path, per_dataset: int = 1, **options) -> tuple[int, object]:
    inputs, landmarks = subset_of_validation(tmp_path, per_dataset=per_dataset)
    stack.manage("migrate", "--noinput")
    args = ["create_phase", "--challenge", "ntire", "--title", "NTIRE prod", "--phase", "dev",
            "--profile", "ntire2025-dev", "--inputs", str(inputs), "--landmarks", str(landmarks)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    output = stack.manage(*args).stdout
    return int(re.search(r"phase id (\d+)", output).group(1)), inputs


def api_token(user: WebUser) -> str:
    page = user.http.get(f"{user.base}/accounts/token/", timeout=30).text
    return re.search(r'<pre id="token">([0-9a-f]+)</pre>', page).group(1)


def scoring_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scoring", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def db_json(stack: LiveStack, expression: str):
    out = stack.shell(f"import json; from submissions.models import *; print(json.dumps({expression}))")
    return json.loads(out.strip().splitlines()[-1])


def test_presigned_upload_through_cli_is_scored_and_ranked(s3, tmp_path, weights_dir):
    stack = make_stack(tmp_path, weights_dir, s3)
    try:
        phase_id, inputs = set_up_phase(stack, tmp_path)
        stack.start_worker()
        stack.start_web()
        user = WebUser(stack.url)
        user.sign_up("carol")
        user.create_team("ntire", "Team Carol")
        token = api_token(user)
        archive = zip_folder(inputs, tmp_path / "restored.zip")

        submitted = scoring_cli("submit", "--server", stack.url, "--token", token, "--phase", str(phase_id),
                                str(archive), "--wait", "--json")
        assert submitted.returncode == 0, submitted.stderr + stack.log("worker")[-3000:]
        status = json.loads(submitted.stdout)
        assert status["state"] == "scored"
        assert "directly in storage" in status["log"][0]["message"]  # the presigned path, not a form post

        # The archive lives in the bucket, byte for byte; the worker computed its checksum.
        keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
        assert any(k.startswith("submissions/") for k in keys)
        assert any(k.startswith("inputs/") for k in keys)  # the input set is stored in S3 too
        assert any("Archive sha256" in line["message"] for line in status["log"])

        board = scoring_cli("leaderboard", "--server", stack.url, "--token", token, str(phase_id), "--json")
        assert board.returncode == 0, board.stderr
        [row] = json.loads(board.stdout)["rows"]
        assert (row["rank"], row["team"], row["submission"]) == (1, "Team Carol", status["id"])

        # Another user, not in the team, cannot read the submission through the API.
        eve = WebUser(stack.url)
        eve.sign_up("eve")
        denied = scoring_cli("status", "--server", stack.url, "--token", api_token(eve), str(status["id"]))
        assert denied.returncode == 1 and "not found" in denied.stderr
    finally:
        stack.close()


def test_worker_killed_mid_scoring_is_finished_by_another_exactly_once(tmp_path, weights_dir):
    stack = make_stack(tmp_path, weights_dir, FR_HEARTBEAT_TIMEOUT=6, FR_WATCHDOG_INTERVAL=2)
    try:
        _, inputs = set_up_phase(stack, tmp_path, per_dataset=4)  # 20 images: long enough to kill
        stack.start_worker("first")
        stack.start_web()
        user = WebUser(stack.url)
        user.sign_up("dave")
        user.create_team("ntire", "Team Dave")
        submission = user.submission_id(user.upload("ntire", "dev", zip_folder(inputs, tmp_path / "r.zip")))
        wait_until(lambda: user.status(submission)["progress"]["done"] > 0, 240, "scoring to be under way")
        assert user.status(submission)["state"] == "scoring"
        stack.kill("first")  # SIGKILL to the whole worker: no chance to clean up

        stack.start_worker("second", beat=True)
        status = user.wait_final(submission, timeout=300)
        assert status["state"] == "scored", stack.log("second")[-3000:]
        assert any("stopped responding" in line["message"] for line in status["log"])
        assert db_json(stack, f"SubmissionResult.objects.filter(submission_id={submission}).count()") == 1
        assert db_json(stack, f"Submission.objects.get(pk={submission}).attempts") == 2
        assert db_json(stack, f"ImageScore.objects.filter(result__submission_id={submission}).count()") == 20
    finally:
        stack.close()


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True, timeout=30)
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
                    "--logfile", "/var/log/redis/ci.log"], check=True, timeout=30)
    wait_until(lambda: subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True,
                                      text=True).stdout.strip() == "PONG", 30, "Redis")


def restart_postgres() -> None:
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                   timeout=120)
    wait_until(lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0, 60, "PostgreSQL")
    # This test process's own connections (the suite's database) died with the server too.
    from django.db import connections

    connections.close_all()


def test_restarting_redis_then_postgres_loses_and_duplicates_nothing(tmp_path, weights_dir):
    stack = make_stack(tmp_path, weights_dir, FR_HEARTBEAT_TIMEOUT=6, FR_WATCHDOG_INTERVAL=2, FR_RESEND_AFTER=8)
    try:
        _, inputs = set_up_phase(stack, tmp_path, max_per_day=10, max_running=10)
        stack.start_web()
        user = WebUser(stack.url)
        user.sign_up("erin")
        user.create_team("ntire", "Team Erin")
        archive = zip_folder(inputs, tmp_path / "r.zip")
        queued = [user.submission_id(user.upload("ntire", "dev", archive)) for _ in range(3)]

        restart_redis()  # Redis keeps nothing on disk here: the queued messages are gone
        stack.start_worker("worker", beat=True)
        wait_until(lambda: any(user.status(s)["state"] != "submitted" for s in queued), 120, "work to start")
        restart_postgres()  # drops every connection of web, worker and beat
        later = [user.submission_id(user.upload("ntire", "dev", archive)) for _ in range(2)]

        finals = [user.wait_final(s, timeout=400) for s in queued + later]
        assert [f["state"] for f in finals] == ["scored"] * 5, stack.log("worker")[-4000:]
        counts = db_json(stack, "[SubmissionResult.objects.filter(submission_id=s).count() for s in "
                                f"{queued + later}]")
        assert counts == [1] * 5
    finally:
        stack.close()


def _rss_peak_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as handle:
            total += next(int(line.split()[1]) for line in handle if line.startswith("VmHWM"))
    return total


def test_one_gigabyte_presigned_upload_does_not_grow_the_web_process(s3, tmp_path, weights_dir):
    stack = make_stack(tmp_path, weights_dir, s3)
    try:
        phase_id, _ = set_up_phase(stack, tmp_path)
        web = stack.start_web()
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True,
                                                   text=True).stdout.split()]
        user = WebUser(stack.url)
        user.sign_up("frank")
        user.create_team("ntire", "Team Frank")
        token = api_token(user)
        big = tmp_path / "big.zip"
        with open(big, "wb") as handle:  # 1 GiB of incompressible-looking bytes
            block = bytes(range(256)) * 4096
            for _ in range(1024):
                handle.write(block)
        before = _rss_peak_kib([web.pid, *workers])
        started = time.monotonic()
        result = scoring_cli("submit", "--server", stack.url, "--token", token, "--phase", str(phase_id), str(big),
                             "--json")
        seconds = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        submission = json.loads(result.stdout)["id"]
        after = _rss_peak_kib([web.pid, *workers])
        print(f"1 GiB presigned upload: {seconds:.1f} s ({1024 / seconds:.0f} MiB/s); web peak RSS "
              f"{before / 1024:.0f} -> {after / 1024:.0f} MiB")
        assert after - before < 64 * 1024, "the web processes grew with the archive"
        head = s3.client().head_object(Bucket=s3.bucket,
                                       Key=db_json(stack, f"Submission.objects.get(pk={submission}).archive.name"))
        assert head["ContentLength"] == 1024 * 1024 * 1024
        assert requests.get(f"{stack.url}/healthz", timeout=10).ok
    finally:
        stack.close()


@pytest.mark.browser
def test_browser_upload_goes_straight_to_s3_with_progress(s3, tmp_path, weights_dir, artifacts_dir):
    from playwright.sync_api import sync_playwright

    stack = make_stack(tmp_path, weights_dir, s3)
    try:
        _, inputs = set_up_phase(stack, tmp_path)
        stack.start_web()
        user = WebUser(stack.url)
        user.sign_up("grace")
        user.create_team("ntire", "Team Grace")
        archive = zip_folder(inputs, tmp_path / "restored.zip")
        cookies = [{"name": c.name, "value": c.value, "url": stack.url} for c in user.http.cookies]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            context = browser.new_context()
            context.add_init_script(CSP_LISTENER)  # the upload's script runs under the page's policy
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda message: message.type == "error"  # the site has no favicon
                    and not message.location.get("url", "").endswith("/favicon.ico") and errors.append(message.text))
            page.context.add_cookies(cookies)
            response = page.goto(f"{stack.url}/c/ntire/p/dev/")
            policy = response.headers["content-security-policy"]
            assert "script-src 'self' 'nonce-" in policy and f"connect-src 'self' {s3.endpoint}" in policy
            page.set_input_files("#upload-form input[name=archive]", str(archive))
            page.click("#upload-form button[type=submit]")
            page.wait_for_url(re.compile(r".*/submissions/\d+/$"), timeout=60_000)
            assert errors == [], errors  # no CSP violation, no failed request on the way
            page.screenshot(path=str(artifacts_dir / "s3-browser-upload.png"), full_page=True)
            submission = int(re.search(r"/submissions/(\d+)/$", page.url).group(1))
            browser.close()
        status = user.status(submission)
        assert "directly in storage" in status["log"][0]["message"]
        assert status["state"] == "submitted"  # no worker here: queued, never read by the web process
    finally:
        stack.close()

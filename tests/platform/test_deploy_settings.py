"""Production settings and the deployment in deploy/.

``manage.py check --deploy`` is clean with production's environment and production refuses to
start without a secret key; no secret is committed; deploy/compose.yaml has every service of a
deployment and starts web and workers with the command lines the end-to-end tests start
(tests/support/stack.py); `manage.py rescore` (the runbook's re-score) requeues a phase's runs.
"""

from __future__ import annotations

import inspect
import io
import os
import re
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from submissions.models import Submission, SubmissionEvent, SubmissionResult

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = (DEPLOY / "compose.yaml", DEPLOY / "compose.gpu-worker.yaml")
SERVICES = ("web", "worker-cpu", "worker-gpu", "postgres", "redis", "s3")
# The Django secret key the embedded default (no environment) uses; documented in settings.py.
EMBEDDED_DEFAULT_KEY = "embedded-default-not-secret"
# The secrets of a deployment: never a value in a committed file.
SECRET_SETTINGS = ("FR_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "FR_S3_ACCESS_KEY_ID",
                   "FR_S3_SECRET_ACCESS_KEY")
APP_DIR = "/app"  # the repository root inside the images

State = Submission.State


# --------------------------------------------------------------------------- helpers


def random_secret_key(length: int = 50) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def run_python(tmp_path: Path, args: list[str], env: dict[str, str | None], cwd: Path = ROOT
               ) -> subprocess.CompletedProcess:
    """Run the project's Python with only the given settings: nothing inherited from this shell's
    FR_*, DATABASE_URL or CELERY_BROKER_URL."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("FR_") and k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    base.update(FR_VAR_DIR=str(tmp_path / "var"), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'platform'}")
    for name, value in env.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return subprocess.run([sys.executable, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=180)


def production_env(**extra: str | None) -> dict[str, str | None]:
    return {"FR_PRODUCTION": "1", "FR_SECRET_KEY": random_secret_key(), "FR_ALLOWED_HOSTS": "challenge.example.org",
            **extra}


def load_compose(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def service(name: str, path: Path = COMPOSE_FILES[0]) -> dict:
    return load_compose(path)["services"][name]


def environment_of(definition: dict) -> dict[str, str]:
    env = definition.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def volume_mounts(definition: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume, short or long syntax."""
    mounts = []
    for entry in definition.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            mounts.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            mounts.append((entry.get("source", ""), entry["target"], bool(entry.get("read_only"))))
    return mounts


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("services", [False, True], ids=["local-storage", "as-compose-sets-it"])
def test_check_deploy_has_no_warnings_in_production(tmp_path, services):
    env = production_env()
    if services:  # what deploy/compose.yaml adds: S3, Redis, the CSRF origins
        env.update(FR_S3_BUCKET="frplatform", FR_S3_ENDPOINT_URL="http://s3:8333",
                   FR_S3_ACCESS_KEY_ID=secrets.token_hex(10), FR_S3_SECRET_ACCESS_KEY=secrets.token_hex(20),
                   CELERY_BROKER_URL=f"redis://:{secrets.token_hex(16)}@redis:6379/0",
                   FR_CSRF_TRUSTED_ORIGINS="https://challenge.example.org")
    result = run_python(tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in result.stdout, output
    assert "WARNINGS:" not in output and "security.W" not in output, output


@pytest.mark.parametrize(("setting", "value", "warning"), [
    ("FR_SECRET_KEY", "weak", "security.W009"),
    ("FR_SSL_REDIRECT", "0", "security.W008"),
], ids=["short-secret-key", "no-https-redirect"])
def test_check_deploy_does_look_at_the_production_settings(tmp_path, setting, value, warning):
    # The clean result above means something: a weakened setting fails the same command.
    weakened = value * 10 if setting == "FR_SECRET_KEY" else value
    result = run_python(tmp_path, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                        production_env(**{setting: weakened}))
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


@pytest.mark.parametrize("secret_key", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("entry", ["manage.py", "wsgi"])
def test_production_refuses_to_start_without_a_secret_key(tmp_path, secret_key, entry):
    env = production_env(FR_SECRET_KEY=secret_key)
    if entry == "manage.py":
        result = run_python(tmp_path, ["manage.py", "check"], env)
    else:  # what gunicorn loads, as the web container starts it
        result = run_python(tmp_path, ["-c", "import frplatform.wsgi"], env, cwd=ROOT / "platform")
    assert result.returncode != 0
    assert "FR_SECRET_KEY must be set in production" in result.stderr, result.stderr[-3000:]
    assert EMBEDDED_DEFAULT_KEY not in result.stdout + result.stderr


def test_a_malformed_images_per_call_stops_the_worker_at_start(tmp_path):
    result = run_python(tmp_path, ["manage.py", "check"], {"FR_IMAGES_PER_CALL": "maniqa=lots"})
    assert result.returncode != 0
    assert "FR_IMAGES_PER_CALL: images per call: 'maniqa=lots' needs a whole number" in result.stderr
    good = run_python(tmp_path, ["manage.py", "shell", "-c", "from django.conf import settings; "
                                 "print(settings.FR_IMAGES_PER_CALL)"], {"FR_IMAGES_PER_CALL": "maniqa=4,musiq=16"})
    assert good.returncode == 0, good.stderr[-3000:]
    assert good.stdout.strip().splitlines()[-1] == "{'maniqa': 4, 'musiq': 16}"


# --------------------------------------------------------------------------- no committed secrets

AWS_ACCESS_KEY = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
# FR_SECRET_KEY, then "=" or ":" and a value, quoted or not; ${FR_SECRET_KEY...} is no value.
SECRET_KEY_VALUE = re.compile(
    r"""(?<![\w${])FR_SECRET_KEY["']?[ \t]*[:=][ \t]*(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s#,;)}\]]*)""")
DJANGO_SECRET_KEY = re.compile(r"""^[ \t]*SECRET_KEY[ \t]*=[ \t]*(?P<q>["'])(?P<value>.*?)(?P=q)""", re.M)
URL_PASSWORD = re.compile(r"""[a-z][a-z0-9+.-]*://[^\s/@:'"]*:(?P<password>[^\s@/'"]+)@""")
STARTPROJECT_KEY_PREFIX = "django-" + "insecure-"


def repository_files() -> list[Path]:
    """Tracked files and new files git does not ignore (so deploy/.env never counts)."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                 capture_output=True, check=True, timeout=60).stdout.decode()
        names = [name for name in listing.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        skip = {".git", ".venv", "var", "test-artifacts", "__pycache__", "node_modules"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)]
    return [ROOT / name for name in names if (ROOT / name).is_file()]


def text_of(path: Path) -> str | None:
    if path.stat().st_size > 5 * 1024 * 1024:
        return None
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def is_placeholder(value: str) -> bool:
    """Empty, an interpolation ($VAR, ${VAR:?...}, $(command)) or a <placeholder>."""
    return value == "" or value.startswith(("$", "<"))


def test_no_secrets_are_committed():
    files = repository_files()
    assert any(path.name == "settings.py" for path in files)
    problems: list[str] = []
    for path in files:
        text = text_of(path)
        if text is None:
            continue
        rel = path.relative_to(ROOT).as_posix()
        for pattern, what in ((AWS_ACCESS_KEY, "an AWS access key id"), (PRIVATE_KEY, "a private key")):
            for match in pattern.finditer(text):
                problems.append(f"{rel}: {what}: {match.group(0)[:12]}...")
        if STARTPROJECT_KEY_PREFIX in text:
            problems.append(f"{rel}: a startproject secret key")
        for match in SECRET_KEY_VALUE.finditer(text):
            raw = match.group("value")
            quoted = raw[:1] in ("'", '"')
            if path.suffix == ".py" and not quoted:
                continue  # a Python name, not a value: {"FR_SECRET_KEY": key}
            value = raw[1:-1] if quoted else raw
            if not is_placeholder(value) and value != EMBEDDED_DEFAULT_KEY:
                problems.append(f"{rel}: FR_SECRET_KEY has a value: {value[:4]}...")
        if path.suffix == ".py" and rel.startswith(("platform/", "scoring/", "manage.py")):
            for match in DJANGO_SECRET_KEY.finditer(text):
                if match.group("value") != EMBEDDED_DEFAULT_KEY:
                    problems.append(f"{rel}: a hard-coded Django SECRET_KEY")
        if rel.startswith("deploy/"):
            for match in URL_PASSWORD.finditer(text):
                if not is_placeholder(match.group("password")):
                    problems.append(f"{rel}: a password in a URL: {match.group(0)[:30]}...")
    assert not problems, "\n".join(problems)


def test_the_settings_key_is_the_documented_embedded_default_only():
    settings_text = (ROOT / "platform" / "frplatform" / "settings.py").read_text()
    assert [m.group("value") for m in DJANGO_SECRET_KEY.finditer(settings_text)] == [EMBEDDED_DEFAULT_KEY]
    assert 'raise RuntimeError("FR_SECRET_KEY must be set in production")' in settings_text


def test_deployment_files_hold_no_secret_values():
    example = (DEPLOY / "env.example").read_text()
    assignments = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.M))
    for name in SECRET_SETTINGS:
        assert name in assignments, f"env.example does not list {name}"
        assert assignments[name].strip() == "", f"env.example gives {name} a value"
    secret_like = re.compile(r"SECRET|PASSWORD|ACCESS_KEY|_AUTH$")
    for path in COMPOSE_FILES:
        for name, definition in load_compose(path)["services"].items():
            for key, value in environment_of(definition).items():
                if secret_like.search(key):
                    assert value.startswith("${"), f"{path.name}: {name}.{key} is not taken from the environment"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


# --------------------------------------------------------------------------- compose


def test_compose_has_every_service_with_a_healthcheck_and_named_volumes():
    compose = load_compose(COMPOSE_FILES[0])
    services = compose["services"]
    assert set(SERVICES) <= set(services), f"missing: {set(SERVICES) - set(services)}"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    s3 = services["s3"]
    assert "seaweedfs" in s3["image"] or "minio" in s3["image"]
    if "seaweedfs" in s3["image"]:
        assert s3["command"][0] == "mini"
    for name in SERVICES:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert services[name].get("restart") == "unless-stopped", name
    declared = set(compose.get("volumes") or {})
    for name, definition in services.items():
        for source, _target, _ro in volume_mounts(definition):
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts the undeclared volume {source}"
    data_dirs = {"postgres": "/var/lib/postgresql/data", "redis": "/data", "s3": "/data"}
    for name, target in data_dirs.items():
        assert any(t == target and s in declared for s, t, _ro in volume_mounts(services[name])), name


def test_compose_requires_only_what_env_example_lists():
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (DEPLOY / "env.example").read_text(), re.M))
    for path in COMPOSE_FILES:
        required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", path.read_text()))
        assert required, path.name
        assert required <= listed, f"{path.name} requires {required - listed}, which env.example does not list"


def test_web_migrates_and_collects_static_files_through_the_entrypoint():
    web = service("web")
    env = environment_of(web)
    assert env["FR_MIGRATE"] == "1" and env["FR_COLLECTSTATIC"] == "1"
    assert env["FR_PRODUCTION"] == "1"
    entrypoint = DEPLOY / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK), "deploy/entrypoint.sh is not executable"
    script = entrypoint.read_text()
    assert "manage.py\" migrate --noinput" in script and "collectstatic --noinput" in script
    assert 'exec "$@"' in script
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        text = (DEPLOY / dockerfile).read_text()
        assert f'ENTRYPOINT ["{APP_DIR}/deploy/entrypoint.sh"]' in text, dockerfile
        assert "requirements.lock" in text, dockerfile
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2, f"{dockerfile} is not multi-stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:[\w.]+-runtime-", (DEPLOY / "Dockerfile.gpu").read_text(), re.M)
    assert any(target == "8000" or target.endswith(":8000") for target in web["ports"])
    # Everything a container runs from deploy/ is in the images' build context (an allow-list).
    for ignore in ("Dockerfile.dockerignore", "Dockerfile.gpu.dockerignore"):
        lines = (DEPLOY / ignore).read_text().split()
        assert "*" in lines and not any(".env" in line and line.startswith("!") for line in lines)
        for needed in ("deploy/entrypoint.sh", "deploy/healthcheck.py", "platform/",
                       "scoring/", "manage.py", "requirements.lock"):
            assert f"!{needed}" in lines, f"{ignore} leaves out {needed}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_gpu_worker_reserves_a_gpu_and_reads_the_weights_read_only(path):
    worker = service("worker-gpu", path)
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    gpus = [d for d in devices if "gpu" in d.get("capabilities", [])]
    assert gpus, "worker-gpu reserves no GPU"
    assert all(d.get("driver") == "nvidia" and (d.get("count") or d.get("device_ids")) for d in gpus)
    env = environment_of(worker)
    assert env["FR_SCORING_DEVICE"] == "cuda"
    weights = [(s, ro) for s, t, ro in volume_mounts(worker) if t == env["FR_WEIGHTS_DIR"]]
    assert weights and all(ro for _s, ro in weights), "the weights volume is not mounted read-only"


# --------------------------------------------------------------------------- the same commands as the tests


def stack_command_lines() -> dict[str, tuple[list[str], Path]]:
    """The argv and working directory of each process tests/support/stack.py starts, captured
    from the real code with process creation replaced by a recorder."""
    from tests.support import stack as stack_module

    captured: dict[str, tuple[list[str], Path]] = {}
    live = object.__new__(stack_module.LiveStack)
    live.workdir, live.port, live.url, live.processes = Path("/stack"), 8000, "http://127.0.0.1:8000", {}

    def record(name: str, argv: list[str], cwd: Path) -> None:
        captured[name] = (["python" if arg == sys.executable else str(arg) for arg in argv], Path(cwd))

    live._spawn = record
    original_wait = stack_module.wait_until
    stack_module.wait_until = lambda *args, **kwargs: True
    try:
        live.start_web()
        live.start_worker(name="worker")
        if "beat" in inspect.signature(stack_module.LiveStack.start_worker).parameters:
            live.start_worker(name="beat", beat=True)
    finally:
        stack_module.wait_until = original_wait
    return captured


def split_command(argv: list[str], prefix_length: int) -> tuple[list[str], dict[str, str | None]]:
    """The program part (``python -m celery -A frplatform worker``) and the options after it."""
    prefix, rest, options = argv[:prefix_length], argv[prefix_length:], {}
    index = 0
    while index < len(rest):
        flag = rest[index]
        assert flag.startswith("-"), f"positional argument {flag!r} among the options of {argv}"
        if index + 1 < len(rest) and not rest[index + 1].startswith("-"):
            options[flag] = rest[index + 1]
            index += 2
        else:
            options[flag] = None
            index += 1
    return prefix, options


def assert_same_command(compose_argv: list[str], stack_argv: list[str], prefix_length: int,
                        deployment_specific: set[str], extras: frozenset[str] | set[str] = frozenset()
                        ) -> dict[str, str | None]:
    """Same program, same options with the same values, except the values a deployment sets
    (address, concurrency, queue, node name, file paths) and ``extras`` only production adds."""
    compose_prefix, compose_options = split_command(compose_argv, prefix_length)
    stack_prefix, stack_options = split_command(stack_argv, prefix_length)
    assert compose_prefix == stack_prefix
    assert not set(stack_options) - set(compose_options), f"compose lacks {set(stack_options) - set(compose_options)}"
    unexpected = set(compose_options) - set(stack_options) - set(extras)
    assert not unexpected, f"compose adds {unexpected}, which the tests never start"
    for flag, value in stack_options.items():
        if flag not in deployment_specific:
            assert compose_options[flag] == value, f"{flag}: compose {compose_options[flag]!r}, tests {value!r}"
    return compose_options


def test_compose_starts_the_command_lines_the_end_to_end_tests_start():
    captured = stack_command_lines()
    compose = load_compose(COMPOSE_FILES[0])["services"]
    for name in ("web", "worker-cpu", "worker-gpu"):
        definition = compose[name]
        # The stack runs them in platform/ with the root and platform/ on PYTHONPATH.
        assert definition["working_dir"] == f"{APP_DIR}/platform", name
        assert environment_of(definition)["PYTHONPATH"] == f"{APP_DIR}:{APP_DIR}/platform", name
    assert captured["web"][1] == ROOT / "platform" and captured["worker"][1] == ROOT / "platform"

    # web: gunicorn frplatform.wsgi, the same options; the address and worker count are the host's.
    web = assert_same_command(compose["web"]["command"], captured["web"][0], 4, {"--bind", "--workers"})
    assert compose["web"]["command"][:4] == ["python", "-m", "gunicorn", "frplatform.wsgi"]
    assert web["--bind"] == "0.0.0.0:8000"

    # worker-gpu: the scoring queue, one run at a time, nothing prefetched.
    worker_specific = {"-Q", "-c", "-n", "-s"}
    gpu = assert_same_command(compose["worker-gpu"]["command"], captured["worker"][0], 6, worker_specific,
                              extras={"--prefetch-multiplier"})
    assert compose["worker-gpu"]["command"][:6] == ["python", "-m", "celery", "-A", "frplatform", "worker"]
    assert (gpu["-Q"], gpu["-c"], gpu["--prefetch-multiplier"]) == ("scoring", "1", "1")
    remote = load_compose(COMPOSE_FILES[1])["services"]["worker-gpu"]
    assert remote["command"] == compose["worker-gpu"]["command"], "the remote GPU worker runs another command"

    # worker-cpu: the default queue and beat, which schedules the watchdog.
    if "beat" in captured:
        cpu = assert_same_command(compose["worker-cpu"]["command"], captured["beat"][0], 6, worker_specific)
    else:  # a stack without beat: -B and its schedule file are production's additions
        cpu = assert_same_command(compose["worker-cpu"]["command"], captured["worker"][0], 6, worker_specific,
                                  extras={"-B", "-s"})
    assert cpu["-Q"] == "default"
    assert "-B" in cpu and cpu["-s"].startswith(environment_of(compose["worker-cpu"])["FR_VAR_DIR"] + "/")

    # Each worker has its own node name per host, and its healthcheck pings exactly that name.
    for name, options in (("worker-cpu", cpu), ("worker-gpu", gpu)):
        prefix, _, host = options["-n"].partition("@")
        assert host == "%h", name
        assert compose[name]["healthcheck"]["test"][-2:] == ["worker", prefix], name


def test_the_watchdog_is_scheduled_for_beat():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "submissions.tasks.watchdog" in tasks


# --------------------------------------------------------------------------- runbook: re-score


def rescore(*args: str) -> str:
    out = io.StringIO()
    call_command("rescore", *args, stdout=out)
    return out.getvalue()


def test_rescore_requeues_the_scored_and_failed_runs_of_a_phase(phase, make_team, make_scored, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    """`manage.py rescore` (it replaced deploy/rescore.py): the runs are queued once their re-run commits."""
    from submissions import services

    queued: list[int] = []
    monkeypatch.setattr(services, "enqueue_scoring", lambda pk: queued.append(pk) or True)
    scored = make_scored(make_team("Alpha"), 0.5)
    failed = make_scored(make_team("Beta"), 0.0, state=State.FAILED, with_result=False)
    Submission.objects.filter(pk=scored.pk).update(attempts=2)
    rejected = make_scored(make_team("Gamma"), 0.0, state=State.REJECTED, with_result=False)
    running = make_scored(make_team("Delta"), 0.0, state=State.SCORING, with_result=False)
    slugs = (phase.challenge.slug, phase.slug)

    assert rescore(*slugs, "--dry-run").strip().endswith(f"would queue 2 submission(s) of {'/'.join(slugs)} again:"
                                                          f" {[scored.pk, failed.pk]}")
    assert queued == [] and SubmissionResult.objects.filter(submission=scored).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert rescore(*slugs).strip().endswith(f": {[scored.pk, failed.pk]}")
    assert queued == [scored.pk, failed.pk]
    states = dict(Submission.objects.values_list("pk", "state"))
    assert states == {scored.pk: State.SUBMITTED, failed.pk: State.SUBMITTED, rejected.pk: State.REJECTED,
                      running.pk: State.SCORING}
    assert not SubmissionResult.objects.filter(submission__in=[scored, failed]).exists()
    assert Submission.objects.get(pk=scored.pk).attempts == 0
    assert SubmissionEvent.objects.filter(submission=scored, state=State.SUBMITTED, message__contains="re-scored")
    with pytest.raises(CommandError, match="no phase"):
        rescore(phase.challenge.slug, "no-such-phase")
    with pytest.raises(CommandError, match="not \\['rejected'\\]"):
        rescore(*slugs, "--states", "rejected")

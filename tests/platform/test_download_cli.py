"""``python -m scoring download`` against a live server: verified, extracted, the next commands printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from competitions import data_services
from competitions.models import Download, PhaseFile
from tests.platform.conftest import INPUT_LAYOUT
from tests.platform.test_downloads import default_queue_builds
from tests.support.env import ROOT


def scoring_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FR_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "scoring", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def served(live_server, loaded_phase, make_user):
    from accounts.models import ApiToken

    default_queue_builds()  # the build queued by loading the input set: built here instead
    data_services.build_phase_data(loaded_phase)
    pat = make_user("pat")
    return live_server.url, ApiToken.objects.create(user=pat).key, loaded_phase


def test_download_verifies_extracts_and_prints_the_next_commands(served, input_folder, tmp_path):
    url, token, phase = served
    done = scoring_cli("download", "--server", url, "--token", token, "--phase", str(phase.pk), "--out", "data",
                       "--all", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for dataset, stem in INPUT_LAYOUT.items():
        assert (tmp_path / f"data/inputs/{dataset}/{stem}.png").read_bytes() == (
            input_folder[0] / dataset / f"{stem}.png").read_bytes()
    assert (tmp_path / "data/ntire-dev_face.csv").is_file()
    check = next(line.strip() for line in done.stdout.splitlines() if "scoring check" in line)
    assert check == "python -m scoring check --inputs data/inputs results.zip"
    assert "--landmarks data/ntire-dev_face.csv" in done.stdout and "--profile ntire2025-dev" in done.stdout
    with zipfile.ZipFile(tmp_path / "data/ntire-dev-starting-kit.zip") as kit:
        kit.extract("sample_submission.zip", tmp_path)
    checked = scoring_cli(*check.split()[3:-1], "sample_submission.zip", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout
    assert sorted(Download.objects.values_list("kind", "via")) == [
        ("inputs", "api"), ("landmarks", "api"), ("starting_kit", "api")]
    again = scoring_cli("download", "--server", url, "--token", token, "--phase", str(phase.pk), "--out", "data",
                        "--json", cwd=tmp_path)  # files already there with the right sha256 are kept
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["inputs"] == "data/inputs" and Download.objects.count() == 3


def test_a_download_whose_sha256_differs_is_refused_and_not_kept(served, tmp_path):
    url, token, phase = served
    PhaseFile.objects.filter(phase=phase, kind="inputs").update(sha256="0" * 64)  # as if the bytes were damaged
    done = scoring_cli("download", "--server", url, "--token", token, "--phase", str(phase.pk), "--out", "data",
                       cwd=tmp_path)
    assert done.returncode == 1 and "sha256" in done.stderr and "nothing kept" in done.stderr
    assert not (tmp_path / "data/inputs").exists()
    assert not list((tmp_path / "data").glob("*.zip*"))


def test_a_refused_participant_gets_the_reason(live_server, loaded_phase, make_user, tmp_path):
    from accounts.models import ApiToken

    default_queue_builds()
    newcomer = make_user("newcomer", registered=False)
    token = ApiToken.objects.create(user=newcomer).key
    done = scoring_cli("download", "--server", live_server.url, "--token", token, "--phase", str(loaded_phase.pk),
                       "--out", "data", cwd=tmp_path)
    assert done.returncode == 1 and "HTTP 403" in done.stderr and "Register for" in done.stderr
    wrong = scoring_cli("download", "--server", live_server.url, "--token", "nope", "--phase", str(loaded_phase.pk),
                        "--out", "data", cwd=tmp_path)
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr

"""The participant's install: ``pip install .`` of a clone into a fresh virtual environment (no torch, no Django),
then ``python -m scoring check`` and the ``fr-scoring`` script from another folder, on a starting kit the platform
built. And ``check`` imports nothing heavy in the full environment either."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest
from django.core.files.storage import default_storage

from competitions import data_services
from competitions.models import PhaseFile
from tests.platform.conftest import INPUT_LAYOUT
from tests.support.env import ROOT


def clone_of_the_repository(target) -> None:
    """The files a clone has (tracked, and new ones not ignored), as they are in this checkout."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.fixture
def kit(loaded_phase, tmp_path):
    """The phase's input zip and starting kit as the platform built them, extracted into ``tmp_path/work``."""
    files = {f.kind: f for f in data_services.build_phase_data(loaded_phase)}
    work = tmp_path / "work"
    for kind, folder in ((PhaseFile.Kind.INPUTS, work / "inputs"), (PhaseFile.Kind.STARTING_KIT, work)):
        with default_storage.open(files[kind].file.name, "rb") as handle, zipfile.ZipFile(handle) as archive:
            archive.extractall(folder)
    return work


@pytest.mark.slow
def test_pip_install_of_a_clone_gives_a_working_scoring_check_from_any_folder(kit, tmp_path):
    source, venv = tmp_path / "clone", tmp_path / "venv"
    clone_of_the_repository(source)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(source)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    packages = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                              check=True).stdout.lower()
    assert "ntire-fr-platform" in packages
    for heavy in ("torch", "django", "pyiqa"):  # the light base install
        assert f"\n{heavy}==" not in "\n" + packages, heavy
    checked = subprocess.run([str(python), "-m", "scoring", "check", "--inputs", "inputs", "sample_submission.zip"],
                             cwd=kit, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(INPUT_LAYOUT)} image(s) checked, no problems" in checked.stdout
    script = subprocess.run([str(venv / "bin" / "fr-scoring"), "check", "--inputs", "inputs", "--json",
                             "sample_submission.zip"], cwd=kit, capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and '"ok": true' in script.stdout, script.stdout + script.stderr
    helped = subprocess.run([str(python), "-m", "scoring", "download", "--help"], cwd=kit, capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0 and "--phase" in helped.stdout


def test_check_imports_nothing_heavy(kit):
    """In the full environment (torch installed) too, ``check`` loads neither torch nor the IQA stack."""
    probe = ("import sys; from scoring.cli import main; code = main(['check', '--inputs', 'inputs',"
             " 'sample_submission.zip']); heavy = [m for m in ('torch', 'pyiqa', 'cv2', 'scipy', 'facexlib', 'django')"
             " if m in sys.modules]; print('HEAVY', heavy); sys.exit(code or bool(heavy))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=kit, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAVY []" in done.stdout

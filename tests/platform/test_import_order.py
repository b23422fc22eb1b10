"""The apps import in one direction and no app's modules import each other in a cycle.

The contracts are pyproject.toml's ``[tool.importlinter]`` (import-linter over grimp's import graph,
which counts imports inside functions too). Each check runs ``lint-imports`` in a fresh process on a
copy of ``platform/``, so an injected import proves that the contracts catch what they claim to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "platform")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the Django project and the contracts, to inject imports into."""
    shutil.copytree(ROOT / "platform", tmp_path / "platform",
                    ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_code_keeps_the_contracts(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_an_upward_import_breaks_the_order(tree: Path) -> None:
    # teams sits below submissions: a team module may not read submissions' models, not even in a function.
    _append(tree / "platform" / "teams" / "services.py",
            "def _peek():\n    from submissions.models import Submission\n    return Submission")
    result = _lint(tree)
    assert result.returncode == 1
    assert "teams is not allowed to import submissions" in result.stdout
    assert "teams.services -> submissions.models" in result.stdout


def test_a_lower_app_reaching_the_top_breaks_the_order(tree: Path) -> None:
    _append(tree / "platform" / "competitions" / "permissions.py", "from organizers import selectors  # noqa")
    result = _lint(tree)
    assert result.returncode == 1
    assert "competitions is not allowed to import organizers" in result.stdout


def test_a_cycle_inside_an_app_breaks_the_contract(tree: Path) -> None:
    # submissions.watchdog imports submissions.services; the reverse would close a cycle.
    _append(tree / "platform" / "submissions" / "services.py",
            "def _sweep():\n    from submissions import watchdog\n    return watchdog")
    result = _lint(tree)
    assert result.returncode == 1
    assert "No import cycle between the modules of an app BROKEN" in result.stdout

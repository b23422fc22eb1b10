import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
os.environ.setdefault("FR_VAR_DIR", str(ROOT / "var" / "pytest"))


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    from tests.support.env import test_weights_dir

    return test_weights_dir()


@pytest.fixture(scope="session")
def landmark_weights() -> Path:
    from tests.support.env import landmark_weights_dir

    return landmark_weights_dir()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path

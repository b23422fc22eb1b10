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
    """RetinaFace's test weights (random init, fixed seed; their class heads find no face), made once a machine."""
    from scoring.testweights import TEST_WEIGHTS_VERSION, default_test_weights_dir, make_test_weights

    directory = default_test_weights_dir().parent / f"test-weights-retinaface-v{TEST_WEIGHTS_VERSION}"
    if not (directory / "manifest.json").is_file() or not (directory / "detection_Resnet50_Final.pth").is_file():
        make_test_weights(directory, models=("retinaface",))
    return directory


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path

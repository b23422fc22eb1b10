"""An organizer's input set without every landmark: RetinaFace runs as a Celery task on a real worker.

The web server (gunicorn) only checks and keeps the upload; a worker on the default queue locates the faces,
the progress page and its JSON follow it, and the set is stored once every input has its landmarks. The
RetinaFace test weights find no face (their class heads are random), so this test derives weights whose class
heads call every anchor a face and whose box and landmark heads return the anchors themselves: every input then
gets landmarks inside the image.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from scoring.inputs import Landmarks, write_landmarks
from tests.platform.conftest import INPUT_LAYOUT, LANDMARK_POINTS
from tests.support.archives import zip_folder
from tests.support.stack import LiveStack, WebUser, wait_until

pytestmark = pytest.mark.slow

DETECTOR = "detection_Resnet50_Final.pth"


def face_everywhere_weights(source: Path, target: Path) -> Path:
    import torch

    shutil.copytree(source, target)
    state = torch.load(target / DETECTOR, map_location="cpu", weights_only=True)
    for key, value in state.items():
        if "ClassHead" in key and key.endswith("weight"):
            value.zero_()
        elif "ClassHead" in key and key.endswith("bias"):  # (background, face) per anchor: always a face
            value.copy_(torch.tensor([-10.0, 10.0]).repeat(value.numel() // 2))
        elif "BboxHead" in key or "LandmarkHead" in key:  # no offset: the anchor's box and centre
            value.zero_()
    torch.save(state, target / DETECTOR)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"][DETECTOR] = hashlib.sha256((target / DETECTOR).read_bytes()).hexdigest()
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.fixture
def stack(tmp_path, landmark_weights):
    weights = face_everywhere_weights(landmark_weights, tmp_path / "weights")
    live = LiveStack("embedded", tmp_path / "stack", weights, extra_env={"FR_PRELOAD_MODELS": "0"})
    yield live
    live.close()


SEED = """
from django.contrib.auth import get_user_model
from django.utils import timezone
from competitions.services import create_challenge, create_phase
challenge = create_challenge(slug="ntire", title="NTIRE", organizers=[get_user_model().objects.get(username="orga")])
create_phase(challenge=challenge, slug="dev", name="Development", scoring_profile="ntire2025-dev",
             opens_at=timezone.now())
print("seeded")
"""

STORED = """
import json
from competitions.models import InputImage
rows = InputImage.objects.filter(dataset__phase__slug="dev")
print(json.dumps({i.stem: [i.box, i.landmarks, i.width] for i in rows}))
"""


def test_the_faces_of_an_input_set_are_located_by_a_worker_and_the_set_stored(stack, input_folder, tmp_path):
    inputs, _ = input_folder
    (celeba, celeba_stem), (_wider, wider_stem) = INPUT_LAYOUT.items()
    csv = tmp_path / "one.csv"  # the CSV gives one input's landmarks; RetinaFace locates the other
    write_landmarks(csv, [Landmarks(celeba_stem, celeba, (8.0, 8.0, 56.0, 56.0), LANDMARK_POINTS)])
    archive = zip_folder(inputs, tmp_path / "inputs.zip")
    stack.manage("migrate", "--noinput")
    stack.start_worker(queues="default")
    stack.start_web()
    orga = WebUser(stack.url)
    orga.sign_up("orga")
    assert "seeded" in stack.shell(SEED)

    with archive.open("rb") as zipped, csv.open("rb") as landmarks:
        response = orga.post_form("/organize/c/ntire/p/dev/inputs/", {},
                                  files={"archive": ("inputs.zip", zipped), "landmarks": ("one.csv", landmarks)},
                                  form_page="/organize/c/ntire/p/dev/")
    match = re.search(r"/organize/c/ntire/p/dev/inputs/jobs/(\d+)/$", response.url)
    assert response.ok and match, (response.status_code, response.url, response.text[-2000:])
    status_url = f"{stack.url}/organize/c/ntire/p/dev/inputs/jobs/{match.group(1)}.json"

    def final() -> dict | None:
        status = orga.http.get(status_url, timeout=10).json()
        return status if status["final"] else None

    status = wait_until(final, 240, "the input-set job")
    assert status["state"] == "stored", (status, stack.log("worker")[-4000:])
    assert (status["images"], status["from_csv"], status["done"], status["total"]) == (2, 1, 1, 1)
    assert "organizers.tasks.locate_faces" in stack.log("worker")
    page = orga.http.get(response.url, timeout=10).text
    assert "Input set stored: 2 images (1 landmarks from the CSV, 1 located by RetinaFace)" in page
    assert 'http-equiv="refresh"' not in page

    stored = json.loads(stack.shell(STORED).strip().splitlines()[-1])
    assert set(stored) == {celeba_stem, wider_stem}
    assert stored[celeba_stem][1] == [list(p) for p in LANDMARK_POINTS]  # from the CSV, as given
    box, points, width = stored[wider_stem]  # from RetinaFace: an anchor's box, its five points inside the image
    assert box[0] < box[2] and box[1] < box[3], box
    assert len(points) == 5 and all(0 <= v <= width for point in points for v in point), (box, points)

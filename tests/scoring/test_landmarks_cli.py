"""``python -m scoring landmarks``: RetinaFace over an input set, written as the organizers' landmarks CSV (for
input sets too large for the web form to run the detector on). Real validation inputs, the detector's test
weights (random init: their class heads find no face at the default confidence)."""

from __future__ import annotations

import csv

from scoring.cli import main as cli_main
from scoring.inputs import LANDMARKS_HEADER, check_landmarks_cover, read_landmarks, scan_inputs
from tests.support.env import subset_of_validation


def test_landmarks_command_writes_the_csv_and_names_the_inputs_without_a_face(landmark_weights, tmp_path, capsys):
    inputs, _ = subset_of_validation(tmp_path, per_dataset=1)
    images = scan_inputs(inputs)
    out = tmp_path / "landmarks.csv"

    code = cli_main(["landmarks", str(inputs), str(out), "--weights", str(landmark_weights), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2  # random weights: no face anywhere; every input is named, the CSV has its header only
    assert f"no face found in {len(images)} input(s)" in captured.err
    assert all(f"  {image.relpath}" in captured.err for image in images)
    with open(out, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [list(LANDMARKS_HEADER)]

    # Counting every detection as a face, each input gets a row the platform reads back.
    code = cli_main(["landmarks", str(inputs), str(out), "--weights", str(landmark_weights), "--device", "cpu",
                     "--confidence", "0"])
    assert code == 0, capsys.readouterr().err
    assert f"wrote the landmarks of {len(images)} of {len(images)} input(s)" in capsys.readouterr().out
    written = read_landmarks(out)
    check_landmarks_cover(images, written)
    assert {(lm.stem, lm.dataset) for lm in written.values()} == {(i.stem, i.dataset) for i in images}


def test_landmarks_command_without_the_detector_names_the_file_and_the_fetch_command(tmp_path, capsys):
    inputs, _ = subset_of_validation(tmp_path, per_dataset=1)
    code = cli_main(["landmarks", str(inputs), str(tmp_path / "out.csv"), "--weights", str(tmp_path / "none"),
                     "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "detection_Resnet50_Final.pth" in err and "python -m scoring weights fetch" in err
    assert not (tmp_path / "out.csv").exists()

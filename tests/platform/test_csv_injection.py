"""Every CSV the platform writes neutralises spreadsheet formulas in text cells, and leaves numbers alone."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.urls import reverse

from scoring import csv_cells
from scoring.inputs import Landmarks, write_landmarks
from scoring.profile import get_profile
from scoring.report_csv import write_images_csv, write_total_csv
from tests.scoring.test_report_csv import make_report

HOSTILE = "=cmd|' /C calc'!A0"


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("text", [HOSTILE, "+1+1", "-2-3", "@SUM(A1)", "\tx", "\rx", "-", "=1"])
def test_formula_like_text_is_prefixed(text):
    assert csv_cells.safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["-0.25", "+3", "1e-05", "-1.5E+10", "-inf", "nan", -0.25, -3, 0, "Alpha",
                                   "a=b", "", " =x"])
def test_numbers_and_plain_text_are_left_alone(value):
    assert csv_cells.safe_cell(value) == value


@pytest.fixture
def org(client, organizer):
    client.force_login(organizer)
    return client


def test_leaderboard_csv_neutralises_a_team_name_and_keeps_a_negative_score(org, phase, make_user, make_team,
                                                                              make_scored):
    team = make_team(HOSTILE, owner=make_user("hostile"))
    submission = make_scored(team, -0.25)
    rows = rows_of(org.get(reverse("organizers:leaderboard-csv", args=["ntire", "dev"])).content.decode())
    [row] = [r for r in rows[1:] if r[2] == str(submission.pk)]
    assert row[1] == "'" + HOSTILE
    assert row[4] == "-0.25" and float(row[5]) == -0.125  # numbers stay numbers, sign and all


def test_archives_index_neutralises_team_names_and_descriptions(org, loaded_phase, make_user, make_team, submit):
    team = make_team("@SUM(1+1)*cmd", owner=make_user("at"))
    submit(team, description="-2+3+cmd|' /C calc'!A0")
    submit(team, description="\t=HYPERLINK(\"http://evil\")")
    response = org.get(reverse("organizers:archives-zip", args=["ntire", "dev"]))
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    index = rows_of(bundle.read("submissions.csv").decode())
    assert {r[2] for r in index[1:]} == {"'@SUM(1+1)*cmd"}
    assert sorted(r[7] for r in index[1:]) == sorted(["'-2+3+cmd|' /C calc'!A0", "'\t=HYPERLINK(\"http://evil\")"])


@pytest.mark.parametrize("write", [write_total_csv, write_images_csv])
def test_eval_csvs_with_negative_scores_are_what_a_plain_csv_writer_writes(tmp_path, monkeypatch, write):
    report = make_report(get_profile("ntire2025"), clipiqa=-0.25, musiq=-1e-05)
    ours, plain = tmp_path / "ours.csv", tmp_path / "plain.csv"
    write(ours, report)
    monkeypatch.setattr(csv_cells, "writer", csv.writer)  # the same file through the plain csv.writer
    write(plain, report)
    assert ours.read_bytes() == plain.read_bytes()
    assert b"-0.25" in ours.read_bytes() and b"'" not in ours.read_bytes()


def test_landmarks_csv_neutralises_a_hostile_stem(tmp_path):
    path = tmp_path / "landmarks.csv"
    write_landmarks(path, [Landmarks(stem="=evil", dataset="CelebA", box=(-1.0, 2.0, 3.0, 4.0),
                                     points=((1.0, 2.0),) * 5)])
    [_, row] = rows_of(path.read_text())
    assert row[0] == "'=evil" and row[2] == "-1.0"

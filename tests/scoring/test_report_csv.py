"""scoring.report_csv: eval.py's two CSV files, byte for byte in layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.aggregate import aggregate
from scoring.profile import ScoringProfile, get_profile
from scoring.report_csv import (
    TOTAL_HEADER,
    eval_csv_names,
    images_header,
    read_total_csv,
    write_images_csv,
    write_total_csv,
)
from scoring.results import ImageResult, ScoreReport

ALL_VALUES = {
    "a": {"niqe": 4.0, "clipiqa": 0.5, "maniqa": 0.25, "musiq": 50.0, "qalign": 4.0},
    "b": {"niqe": 6.0, "clipiqa": 0.75, "maniqa": 0.5, "musiq": 70.0, "qalign": 3.0},
}


def make_report(profile: ScoringProfile, fid: float | None = 40.0, **overrides: float) -> ScoreReport:
    keep = set(profile.iqa_metrics)
    images = [
        ImageResult(
            "Wider-Test", "b", {k: v for k, v in ALL_VALUES["b"].items() if k in keep}, 0.25, 0.3
        ),  # failed: 0.25 < 0.3
        ImageResult(
            "CelebA",
            "a",
            {k: overrides.get(k, v) for k, v in ALL_VALUES["a"].items() if k in keep},
            0.75,
            0.5,
        ),
    ]
    summary = aggregate(profile, images, fid if profile.uses_fid else None, {"CelebA": 99.0})
    return ScoreReport(
        profile=profile.to_dict(),
        images=images,
        datasets=summary.datasets,
        overall=summary.overall,
        id_similarity=summary.id_similarity,
        failed_count=summary.failed_count,
        terms=summary.terms,
        total=summary.total,
        valid=summary.valid,
        weights={},
        official_weights=False,
        versions={},
        device="cpu",
    )


def test_eval_csv_names() -> None:
    assert eval_csv_names("team--run") == ("team--run_total.csv", "team--run.csv")


def test_total_csv_layout(tmp_path: Path) -> None:
    report = make_report(get_profile("ntire2025"))
    path = tmp_path / "x_total.csv"
    write_total_csv(path, report)
    raw = path.read_bytes()
    assert raw.count(b"\r\n") == 5 and b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.decode("utf-8").split("\r\n")
    assert lines[0] == "Dataset,NIQE,CLIP_IQA,MANIQA,MUSIQ,QALIGN,FID,ID_Sim,low_ID_Sim,Total"
    # Datasets in NTIRE's order whatever order the images came in; FID and Total are 0 per
    # dataset even when a per-dataset FID exists, as eval.py writes them.
    assert lines[1] == "CelebA,4.0,0.5,0.25,50.0,4.0,0,0.75,0,0"
    assert lines[2] == "Wider-Test,6.0,0.75,0.5,70.0,3.0,0,0.25,1,0"
    assert lines[3] == "All,5.0,0.625,0.375,60.0,3.5,40.0,0.5,1,0"
    assert lines[4] == f"Weighted Score,0.5,0.625,0.375,0.6,0.7,0.6,0,0,{report.total!s}"
    assert lines[5] == ""
    assert report.total == pytest.approx(3.4)


def test_total_csv_round_trip(tmp_path: Path) -> None:
    report = make_report(get_profile("ntire2025"))
    path = tmp_path / "x_total.csv"
    write_total_csv(path, report)
    table = read_total_csv(path)
    assert list(table) == ["CelebA", "Wider-Test", "All", "Weighted Score"]
    assert all(list(row) == list(TOTAL_HEADER[1:]) for row in table.values())
    assert table["All"]["FID"] == report.overall["fid"]
    assert table["All"]["low_ID_Sim"] == report.failed_count
    assert table["All"]["ID_Sim"] == report.id_similarity
    assert table["Weighted Score"]["Total"] == report.total
    for dataset in report.datasets:
        row = table[dataset.dataset]
        assert row["NIQE"] == dataset.metrics["niqe"]
        assert row["MUSIQ"] == dataset.metrics["musiq"]
        assert row["low_ID_Sim"] == dataset.failed_count
    for metric, column in (("clipiqa", "CLIP_IQA"), ("qalign", "QALIGN"), ("fid", "FID")):
        assert table["Weighted Score"][column] == report.terms[metric]


def test_total_csv_writes_absent_metrics_as_zero(tmp_path: Path) -> None:
    no_qalign = make_report(get_profile("ntire2025-no-qalign"))
    path = tmp_path / "nq_total.csv"
    write_total_csv(path, no_qalign)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[5] for line in lines[1:]] == ["0", "0", "0", "0"]
    assert lines[3] == "All,5.0,0.625,0.375,60.0,0,40.0,0.5,1,0"

    dev = make_report(get_profile("ntire2025-dev"))
    write_total_csv(path, dev)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == "CelebA,0,0.5,0,50.0,0,0,0.75,0,0"
    assert lines[3] == "All,0,0.625,0,60.0,0,0,0.5,1,0"
    assert lines[4] == f"Weighted Score,0,0.625,0,0.6,0,0,0,0,{dev.total!s}"
    assert read_total_csv(path)["All"]["NIQE"] == 0.0


def test_clamped_lower_is_better_term_is_written_as_int_zero(tmp_path: Path) -> None:
    # eval.py's max(0, x) yields the int 0 for x <= 0, so csv writes "0", not "0.0".
    report = make_report(get_profile("ntire2025"), fid=150.0, niqe=20.0)
    assert report.terms["fid"] == 0.0 and report.terms["niqe"] == 0.0
    path = tmp_path / "c_total.csv"
    write_total_csv(path, report)
    weighted = path.read_text(encoding="utf-8").splitlines()[4].split(",")
    assert weighted[1] == "0" and weighted[6] == "0"
    assert weighted[2] == "0.625"


def test_images_csv_layout(tmp_path: Path) -> None:
    report = make_report(get_profile("ntire2025"))
    path = tmp_path / "x.csv"
    write_images_csv(path, report)
    assert path.read_bytes() == (
        b"Filename,CLIP_IQA,Dataset,ID_Sim,MANIQA,MUSIQ,NIQE,QALIGN\r\n"
        b"b.png,0.75,Wider-Test,0.25,0.5,70.0,6.0,3.0\r\n"
        b"a.png,0.5,CelebA,0.75,0.25,50.0,4.0,4.0\r\n"
    )


def test_images_csv_without_qalign(tmp_path: Path) -> None:
    report = make_report(get_profile("ntire2025-no-qalign"))
    path = tmp_path / "x.csv"
    write_images_csv(path, report)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Filename,CLIP_IQA,Dataset,ID_Sim,MANIQA,MUSIQ,NIQE"
    assert lines[1] == "b.png,0.75,Wider-Test,0.25,0.5,70.0,6.0"
    assert "QALIGN" not in path.read_text(encoding="utf-8")


def test_images_header_follows_the_profile() -> None:
    assert images_header(get_profile("ntire2025-dev")) == [
        "Filename",
        "CLIP_IQA",
        "Dataset",
        "ID_Sim",
        "MUSIQ",
    ]
    fid_only = ScoringProfile("fid-only", get_profile("ntire2025").terms[-1:])
    assert images_header(fid_only) == ["Filename", "Dataset", "ID_Sim"]


def test_images_csv_missing_value_is_zero(tmp_path: Path) -> None:
    report = make_report(get_profile("ntire2025"))
    del report.images[0].metrics["maniqa"]
    path = tmp_path / "x.csv"
    write_images_csv(path, report)
    assert path.read_text(encoding="utf-8").splitlines()[1] == "b.png,0.75,Wider-Test,0.25,0,70.0,6.0,3.0"


def test_read_total_csv_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "bad_total.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="no header"):
        read_total_csv(path)
    path.write_text("Dataset,NIQE\r\nAll,4.0,5.0\r\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        read_total_csv(path)
    path.write_text("Dataset,NIQE\r\nAll,four\r\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        read_total_csv(path)

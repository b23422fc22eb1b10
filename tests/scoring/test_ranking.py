"""scoring.ranking: NTIRE 2025's Table 1 recomputed and re-ranked, plus tie and NaN rules."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from scoring.ranking import RankedEntry, ScoredEntry, format_table, rank_entries, rank_table, run_rank_cli
from tests.support.env import shared_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
UNRANKED = {"Fustar-fsr", "Night Watch", "IPCV"}


@pytest.fixture(scope="module")
def table1() -> Path:
    path = shared_dir() / "reference" / "ntire2025-table1.csv"
    if not path.is_file():
        message = f"NTIRE 2025 Table 1 not found at {path}; set FR_SHARED_DIR to the shared folder"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def published(table1: Path) -> dict[str, dict[str, str]]:
    with open(table1, newline="", encoding="utf-8") as handle:
        return {row["team"]: row for row in csv.DictReader(handle)}


# --- Table 1 -------------------------------------------------------------------------------


def test_table1_totals_match_the_published_ones(table1: Path, published: dict[str, dict[str, str]]) -> None:
    ranked = rank_table(table1)
    assert {e.team for e in ranked} == set(published)
    for entry in ranked:
        expected = float(published[entry.team]["total_score"])
        assert abs(entry.total - expected) <= 1.5e-4, (entry.team, entry.total, expected)
        assert entry.failed_images == int(published[entry.team]["failed_images"])


def test_table1_ranks_match_the_published_ones(table1: Path, published: dict[str, dict[str, str]]) -> None:
    ranked = rank_table(table1)
    expected_order = sorted(
        (team for team, row in published.items() if row["rank"]), key=lambda t: int(published[t]["rank"])
    )
    assert [e.team for e in ranked[:10]] == expected_order
    assert [e.rank for e in ranked[:10]] == list(range(1, 11))
    for entry in ranked[:10]:
        assert entry.rank == int(published[entry.team]["rank"])
        assert entry.valid


def test_table1_teams_failing_the_identity_test_are_unranked(table1: Path) -> None:
    ranked = rank_table(table1)
    tail = ranked[10:]
    assert {e.team for e in tail} == UNRANKED
    assert all(e.rank is None and not e.valid for e in tail)
    # Unranked entries follow the ranked ones, ordered by total.
    assert [e.team for e in tail] == ["Fustar-fsr", "Night Watch", "IPCV"]
    # Fustar-fsr's total would place it seventh: validity, not total, keeps it out.
    assert ranked[5].total > tail[0].total > ranked[6].total


def test_table1_with_a_looser_limit_ranks_ipcv(table1: Path) -> None:
    ranked = rank_table(table1, max_failed=17)
    ipcv = next(e for e in ranked if e.team == "IPCV")
    assert ipcv.valid and ipcv.rank == 11


def test_rank_cli_json_in_process(table1: Path, published: dict[str, dict[str, str]]) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_rank_cli(table1, max_failed=10, as_json=True) == 0
    check_cli_json(json.loads(out.getvalue()), published)


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rank_cli_json_subprocess(table1: Path, published: dict[str, dict[str, str]]) -> None:
    done = run_module("rank", str(table1), "--json")
    assert done.returncode == 0, done.stderr
    check_cli_json(json.loads(done.stdout), published)


def test_rank_cli_subprocess_bad_input(tmp_path: Path) -> None:
    path = write(tmp_path, "team,niqe\nA,4\n")
    done = run_module("rank", str(path), "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def check_cli_json(rows: list[dict[str, object]], published: dict[str, dict[str, str]]) -> None:
    assert len(rows) == len(published)
    for row in rows:
        assert set(row) == {"team", "total", "rank", "valid", "failed_images"}
        source = published[str(row["team"])]
        assert abs(float(row["total"]) - float(source["total_score"])) <= 1.5e-4  # type: ignore[arg-type]
        assert row["rank"] == (int(source["rank"]) if source["rank"] else None)
        assert row["valid"] is (row["team"] not in UNRANKED)
        assert row["failed_images"] == int(source["failed_images"])


def test_rank_cli_text_table(table1: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert run_rank_cli(table1, max_failed=10, as_json=False) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["Rank", "Team", "Total", "Failed", "Valid"]
    assert lines[1].split() == ["1", "AllForFace", "4.3639", "1", "yes"]
    assert lines[-1].split() == ["-", "IPCV", "3.6450", "17", "no"]
    # Aligned: every row's total ends in the same column.
    ends = {line.index(line.split()[-3]) + len(line.split()[-3]) for line in lines}
    assert len(ends) == 1


# --- rank_table input errors -----------------------------------------------------------


HEADER = "team,niqe,clipiqa,maniqa,musiq,qalign,fid,failed_images\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "team,niqe,clipiqa,maniqa,musiq,fid,failed_images\nA,4,0.9,0.7,75,60,0\n")
    with pytest.raises(ValueError, match="missing columns: qalign"):
        rank_table(path)


def test_non_number_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "A,4,0.9,0.7,75,4.5,60,0\nB,4,zero,0.7,75,4.5,60,0\n")
    with pytest.raises(ValueError, match=r"line 3: column 'clipiqa' is not a number: 'zero'"):
        rank_table(path)


@pytest.mark.parametrize("value", ["", "nan", "inf"])
def test_empty_or_non_finite_values_are_rejected(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, HEADER + f"A,4,0.9,0.7,75,4.5,{value},0\n")
    with pytest.raises(ValueError, match=r"line 2: column 'fid'"):
        rank_table(path)


@pytest.mark.parametrize("value", ["1.5", "-1", "x"])
def test_failed_images_must_be_a_count(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, HEADER + f"A,4,0.9,0.7,75,4.5,60,{value}\n")
    with pytest.raises(ValueError, match=r"line 2: column 'failed_images'"):
        rank_table(path)


def test_profile_without_qalign_does_not_need_the_column(tmp_path: Path) -> None:
    path = write(tmp_path, "team,niqe,clipiqa,maniqa,musiq,fid,failed_images\nA,4,0.9,0.7,75,60,0\n")
    (entry,) = rank_table(path, profile_name="ntire2025-no-qalign")
    assert entry.total == pytest.approx(0.9 + 0.7 + 0.75 + 0.6 + 0.4)


def test_rank_cli_bad_input_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, HEADER + "A,4,0.9,0.7,75,4.5,sixty,0\n")
    assert run_rank_cli(path, max_failed=10, as_json=True) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and "'fid'" in captured.err
    assert "Traceback" not in captured.err

    assert run_rank_cli(tmp_path / "missing.csv", max_failed=10, as_json=False) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "missing.csv" in captured.err


# --- rank_entries rules ----------------------------------------------------------------


@pytest.mark.parametrize(("failed", "valid"), [(0, True), (10, True), (11, False)])
def test_ten_failed_images_pass_eleven_fail(failed: int, valid: bool) -> None:
    (entry,) = rank_entries([ScoredEntry("A", 4.0, failed)], max_failed=10)
    assert entry.valid is valid
    assert entry.rank == (1 if valid else None)


def test_invalid_entries_follow_unranked_by_total() -> None:
    entries = [
        ScoredEntry("low", 3.0, 0),
        ScoredEntry("bad-high", 5.0, 11),
        ScoredEntry("high", 4.0, 10),
        ScoredEntry("bad-low", 2.0, 200),
    ]
    ranked = rank_entries(entries)
    assert [(e.team, e.rank, e.valid) for e in ranked] == [
        ("high", 1, True),
        ("low", 2, True),
        ("bad-high", None, False),
        ("bad-low", None, False),
    ]


def test_ties_get_distinct_ranks_by_the_tie_break_key() -> None:
    entries = [
        ScoredEntry("late", 4.0, 0, tiebreak=(30, "late")),
        ScoredEntry("early", 4.0, 0, tiebreak=(10, "early")),
        ScoredEntry("best", 4.5, 0, tiebreak=(99, "best")),
        ScoredEntry("middle", 4.0, 0, tiebreak=(20, "middle")),
    ]
    expected = [("best", 1), ("early", 2), ("middle", 3), ("late", 4)]
    assert [(e.team, e.rank) for e in rank_entries(entries)] == expected
    assert [(e.team, e.rank) for e in rank_entries(reversed(entries))] == expected


def test_full_ties_keep_input_order() -> None:
    entries = [ScoredEntry("b", 1.0, 0, ref=1), ScoredEntry("a", 1.0, 0, ref=2)]
    assert [e.ref for e in rank_entries(entries)] == [1, 2]


def test_table_ties_break_by_team_name(tmp_path: Path) -> None:
    row = "4,0.9,0.7,75,4.5,60,0\n"
    path = write(tmp_path, HEADER + f"Zed,{row}Amy,{row}Mia,{row}")
    assert [(e.team, e.rank) for e in rank_table(path)] == [("Amy", 1), ("Mia", 2), ("Zed", 3)]


def test_nan_and_none_totals_never_rank_above_scored_ones() -> None:
    entries = [
        ScoredEntry("nan", math.nan, 0),
        ScoredEntry("none", None, 0),
        ScoredEntry("low", -5.0, 0),
        ScoredEntry("bad-nan", math.nan, 50),
        ScoredEntry("bad", -9.0, 50),
        ScoredEntry("high", 1.0, 0),
    ]
    for order in (entries, list(reversed(entries))):
        ranked = rank_entries(order)
        assert [e.team for e in ranked[:2]] == ["high", "low"]
        assert [e.rank for e in ranked[:2]] == [1, 2]
        unscored = ranked[2:4]
        assert {e.team for e in unscored} == {"nan", "none"}
        assert all(e.rank is None and e.valid and math.isnan(e.total) for e in unscored)
        assert [e.team for e in ranked[4:]] == ["bad", "bad-nan"]


def test_unscored_total_is_null_in_json() -> None:
    entry = RankedEntry("A", math.nan, None, True, 0)
    assert entry.to_json() == {"team": "A", "total": None, "rank": None, "valid": True, "failed_images": 0}
    assert "-" in format_table([entry]).splitlines()[1]

"""What a team reads about its runs: the submission page (per-dataset and per-image tables, failed images beside
their inputs, histograms), the image views, the leaderboard's charts, the team's history, which submission counts,
the quota, and the API documentation.

The failed-image case runs the real worker pipeline on the two-image input set with CelebA's identity threshold
raised above 1, so the CelebA image (the input itself, similarity 1.0) fails and the Wider-Test one passes.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from competitions.models import Phase
from competitions.services import load_input_set
from submissions import pipeline
from submissions.models import Submission
from submissions.selectors import restored_image_name
from tests.platform.conftest import INPUT_LAYOUT

State = Submission.State
CELEBA = ("CelebA", INPUT_LAYOUT["CelebA"])
WIDER = ("Wider-Test", INPUT_LAYOUT["Wider-Test"])
T0 = timezone.now() - timedelta(days=2)


def json_blocks(page: str) -> dict[str, Any]:
    return {m.group(1): json.loads(m.group(2)) for m in re.finditer(
        r'<script id="([^"]+)" type="application/json">(.*?)</script>', page, re.S)}


def check_figures(data: dict[str, Any]) -> dict[str, go.Figure]:
    """Each figure of a chart block is one plotly accepts as it is (unknown keys or bad values raise)."""
    assert set(data) == {"figures"} and data["figures"]
    return {name: go.Figure(figure) for name, figure in data["figures"].items()}


def page(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.content.decode()


def table(html: str, table_id: str) -> str:
    return html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]


# --------------------------------------------------------------------------- submission page and images


@pytest.fixture
def strict_phase(loaded_phase, input_folder) -> Phase:
    """The input set again, with a CelebA identity threshold no image can reach."""
    inputs, landmarks = input_folder
    load_input_set(loaded_phase, inputs, landmarks, thresholds={"CelebA": 1.5})
    loaded_phase.refresh_from_db()
    return loaded_phase


def test_submission_page_tables_failed_images_and_histograms(client, scoring_settings, strict_phase, make_team,
                                                             submit, organizer, input_folder):
    alpha, bravo = make_team("Alpha"), make_team("Bravo")
    submission = submit(alpha)
    assert pipeline.run_submission(submission.pk) == State.SCORED
    result = submission.__class__.objects.get(pk=submission.pk).result
    assert result.failed_count == 1

    # The worker kept the failed restored image, byte for byte, and nothing else.
    media = Path(settings.MEDIA_ROOT)
    kept = sorted(p.relative_to(media).as_posix() for p in (media / "restored").rglob("*") if p.is_file())
    assert kept == [restored_image_name(submission.pk, *CELEBA)]
    celeba_input = (input_folder[0] / CELEBA[0] / f"{CELEBA[1]}.png").read_bytes()
    assert (media / kept[0]).read_bytes() == celeba_input

    client.force_login(alpha.created_by)
    html = page(client, reverse("submission-detail", args=[submission.pk]))
    # How the numbers were computed: the worker's CPU, torch's kernels, the BLAS, the weights.
    provenance = html.split('id="provenance"', 1)[1].split("</details>", 1)[0]
    assert result.versions["cpu"] and result.versions["cpu"] in provenance
    assert f"<td>{result.versions['cpu_capability']}</td>" in provenance and "torch BLAS" in provenance
    assert "not the official files" in provenance
    datasets = table(html, "datasets")
    assert re.findall(r'<tr data-dataset="([^"]+)"', datasets) == sorted(INPUT_LAYOUT)
    images = table(html, "images")
    assert 'class="sortable"' in html.split('id="images"', 1)[1][:40]
    rows = dict((name, cls) for cls, name in re.findall(r'<tr class="([^"]*)" data-image="([^"]+)"', images))
    assert rows == {"/".join(CELEBA): "failed", "/".join(WIDER): ""}
    assert images.count('<button type="button" class="sort">') == 5 + 2  # dataset .. ID test, CLIP-IQA, MUSIQ
    # The failed image beside its input, both through the submission's image views.
    restored_url = reverse("submission-restored-image", args=[submission.pk, *CELEBA])
    input_url = reverse("submission-input-image", args=[submission.pk, *CELEBA])
    pairs = html.split('class="pairs"', 1)[1]
    assert restored_url in pairs and input_url in pairs
    assert pairs.count('<figure class="pair"') == 1
    assert "/media/" not in html

    charts = json_blocks(html)["submission-charts"]
    figures = check_figures(charts)
    assert list(figures) == ["hist-id_similarity", "hist-clipiqa", "hist-musiq"]
    for name, figure in figures.items():
        assert [t.type for t in figure.data] == ["histogram", "histogram"], name
        assert sum(len(t.x) for t in figure.data) == len(INPUT_LAYOUT), name
    assert sorted(figures["hist-clipiqa"].data[0].x + figures["hist-clipiqa"].data[1].x) == pytest.approx(
        sorted(i.metrics["clipiqa"] for i in result.images.all()))
    assert 'src="/static/vendor/plotly.min.js"' in html and "cdn" not in html.lower()

    # Image views: PNG, never sniffed, never a document; to the team and the organizers only.
    for url, expected in ((restored_url, celeba_input), (input_url, celeba_input)):
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content)
        assert body == expected and body.startswith(b"\x89PNG\r\n\x1a\n")
        assert response["Content-Type"] == "image/png"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "default-src 'none'"
        assert re.fullmatch(r'inline; filename="[A-Za-z0-9._-]+\.png"', response["Content-Disposition"])
    # An image that passed was not kept; names that are not the submission's images are not served.
    for url in (reverse("submission-restored-image", args=[submission.pk, *WIDER]),
                reverse("submission-input-image", args=[submission.pk, "CelebA", "nope"]),
                f"/submissions/{submission.pk}/restored/..%2F..%2Fsettings/x.png",
                f"/submissions/{submission.pk}/input/CelebA/..%2F..%2F..%2Fetc%2Fpasswd.png"):
        assert client.get(url).status_code == 404, url
    client.force_login(organizer)
    assert client.get(restored_url).status_code == 200 and client.get(input_url).status_code == 200
    for user in (bravo.created_by, None):
        client.logout()
        if user:
            client.force_login(user)
        for url in (restored_url, input_url, reverse("submission-detail", args=[submission.pk])):
            response = client.get(url)
            assert response.status_code == 404, (user, url)
            assert response.get("Content-Type", "").startswith("text/html")


def test_rerun_keeps_only_the_new_runs_failed_images(scoring_settings, strict_phase, make_team, submit):
    from submissions.services import rerun_submission

    team = make_team("Alpha")
    submission = submit(team)
    assert pipeline.run_submission(submission.pk) == State.SCORED
    name = restored_image_name(submission.pk, *CELEBA)
    media = Path(settings.MEDIA_ROOT)
    assert (media / name).is_file()
    # The organizers lower the threshold again and re-run: nothing fails, nothing is kept.
    dataset_thresholds = {**strict_phase.profile_snapshot["identity_thresholds"], "CelebA": 0.5}
    Phase.objects.filter(pk=strict_phase.pk).update(
        profile_snapshot={**strict_phase.profile_snapshot, "identity_thresholds": dataset_thresholds})
    assert rerun_submission(submission, "orga")
    assert pipeline.run_submission(submission.pk) == State.SCORED
    assert not [p for p in (media / "restored").rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- leaderboard charts


def html_ranking(html: str) -> list[tuple[str, str]]:
    body = table(html, "leaderboard")
    return re.findall(r'<tr [^>]*data-team="([^"]+)">\s*<td>([^<]*)</td>', body)


def leaderboard_chart_data(client, html: str) -> dict[str, Any]:
    """The figures the leaderboard page's charts fetch (static/charts.js reads each div's data-url)."""
    [url] = set(re.findall(r'<div class="chart" [^>]*data-url="([^"]+)"', html))
    response = client.get(url.replace("&amp;", "&"))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    return response.json()


def test_leaderboard_charts_and_ranking_match_the_json(client, phase, make_team, make_scored):
    teams = {name: make_team(name) for name in ("Alpha", "Bravo", "Charlie", "Delta")}
    make_scored(teams["Alpha"], 0.6, datasets=["CelebA", "LFW-Test"], at=T0)
    make_scored(teams["Bravo"], 0.8, datasets=["CelebA", "LFW-Test"], at=T0)
    make_scored(teams["Charlie"], 0.9, failed=25, datasets=["CelebA"], at=T0)  # over the failed-image limit
    make_scored(teams["Delta"], 0.7, datasets=["LFW-Test"], at=T0)

    html = page(client, reverse("leaderboard", args=["ntire", "dev"]))
    board = client.get(reverse("leaderboard-json", args=["ntire", "dev"])).json()
    assert html_ranking(html) == [(r["team"], str(r["rank"]) if r["rank"] else "—") for r in board["rows"]]
    assert [r["team"] for r in board["rows"]] == ["Bravo", "Delta", "Alpha", "Charlie"]

    figures = check_figures(leaderboard_chart_data(client, html))
    assert list(figures) == ["scatter", "datasets-total", "datasets-clipiqa", "datasets-musiq"]
    ranked, invalid = figures["scatter"].data
    assert list(ranked.text) == ["Bravo", "Delta", "Alpha"] and list(invalid.text) == ["Charlie"]
    assert list(ranked.y) == pytest.approx([0.8, 0.7, 0.6]) and list(invalid.y) == pytest.approx([0.9])
    assert list(ranked.x) == pytest.approx([0.9, 0.9, 0.9])
    assert invalid.marker.symbol == "x" and ranked.marker.symbol == "circle"
    # Per-dataset bars: one bar per team (in ranking order), one group per dataset; the total is the formula
    # (CLIP-IQA + MUSIQ/100) on each dataset's means; a team without a dataset has no bar there.
    bars = figures["datasets-total"].data
    assert [b.name for b in bars] == ["Bravo", "Delta", "Alpha", "Charlie"]
    assert all(list(b.x) == list(board["datasets"]) for b in bars)
    by_team = {b.name: dict(zip(b.x, b.y)) for b in bars}
    for name, rows in board["datasets"].items():
        for r in rows:
            expected = r["metrics"]["clipiqa"] + r["metrics"]["musiq"] / 100
            assert by_team[r["team"]][name] == pytest.approx(expected), (r["team"], name)
    assert by_team["Delta"]["CelebA"] is None and by_team["Charlie"]["LFW-Test"] is None
    musiq = {b.name: dict(zip(b.x, b.y)) for b in figures["datasets-musiq"].data}
    assert musiq["Bravo"]["LFW-Test"] == pytest.approx(0.8 * 50)
    assert 'id="dataset-chart-metric"' in html and 'value="datasets-musiq"' in html


def test_a_team_name_cannot_inject_markup_into_the_page_or_its_charts(client, phase, make_team, make_scored):
    name = '</script><script>alert(1)</script><b onmouseover="x">'
    make_scored(make_team(name), 0.5)
    html = page(client, reverse("leaderboard", args=["ntire", "dev"]))
    assert "<script>alert(1)" not in html and '<b onmouseover="x">' not in html
    scatter = leaderboard_chart_data(client, html)["figures"]["scatter"]
    # plotly.js reads a few HTML-like tags in labels: the name is given to it escaped, and shows as typed.
    escaped = '&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;b onmouseover="x"&gt;'
    assert scatter["data"][0]["text"] == [escaped]


def test_no_charts_without_scores(client, phase):
    html = page(client, reverse("leaderboard", args=["ntire", "dev"]))
    assert "No scored submission yet." in html
    assert json_blocks(html) == {} and "data-url" not in html and "plotly.min.js" not in html


# --------------------------------------------------------------------------- team page, selection, quota


def test_team_history_chart_per_phase(client, challenge, phase, make_team, make_scored):
    from competitions.services import create_phase

    test_phase = create_phase(challenge=challenge, slug="test", name="Test", scoring_profile="ntire2025-dev",
                              opens_at=T0)
    alpha, bravo = make_team("Alpha"), make_team("Bravo")
    first = make_scored(alpha, 0.4, at=T0)
    invalid = make_scored(alpha, 0.3, failed=25, at=T0 + timedelta(hours=1))
    make_scored(alpha, 0.0, state=State.REJECTED, with_result=False, at=T0 + timedelta(hours=2))
    last = make_scored(alpha, 0.6, at=T0 + timedelta(hours=3))
    make_scored(alpha, 0.55, for_phase=test_phase, at=T0)
    make_scored(bravo, 0.9, at=T0)

    client.force_login(alpha.created_by)
    html = page(client, reverse("team-detail", args=[alpha.pk]))
    figures = check_figures(json_blocks(html)["team-charts"])
    assert list(figures) == [f"history-{phase.pk}", f"history-{test_phase.pk}"]
    [line] = figures[f"history-{phase.pk}"].data
    assert list(line.y) == pytest.approx([0.4, 0.3, 0.6])  # scored runs only, in order; not Bravo's
    assert [c[0] for c in line.customdata] == [first.pk, invalid.pk, last.pk]
    assert list(line.marker.symbol) == ["circle", "x", "circle"]
    assert list(figures[f"history-{test_phase.pk}"].data[0].y) == pytest.approx([0.55])

    client.force_login(bravo.created_by)
    page(client, reverse("team-detail", args=[alpha.pk]), status=404)


def test_selected_rule_choice_shows_on_the_phase_page(client, phase, make_team, make_scored):
    phase.selection = Phase.Selection.SELECTED
    phase.save()
    alpha = make_team("Alpha")
    best = make_scored(alpha, 0.9, at=T0)
    chosen = make_scored(alpha, 0.4, at=T0 + timedelta(hours=1))
    rejected = make_scored(alpha, 0, state=State.REJECTED, with_result=False, at=T0 + timedelta(hours=2))
    client.force_login(alpha.created_by)
    phase_url = reverse("phase-detail", args=["ntire", "dev"])

    html = page(client, phase_url)  # no choice yet: the best valid run counts, and the page says which
    assert "the submission the team selects" in html
    assert re.search(rf'id="counted-submission">submission {best.pk}<', html)
    html = page(client, reverse("submission-detail", args=[chosen.pk]))
    assert 'id="select-form"' in html and 'id="counts-note"' not in html

    response = client.post(reverse("submission-select", args=[chosen.pk]), follow=True)
    assert f"Submission {chosen.pk} now counts" in response.content.decode()
    html = page(client, reverse("submission-detail", args=[chosen.pk]))
    assert 'id="counts-note"' in html and 'id="selected-note"' in html and 'id="select-form"' not in html
    html = page(client, phase_url)
    assert re.search(rf'id="counted-submission">submission {chosen.pk}<', html)
    counted_rows = re.findall(r'<tr class="counted"><td><a href="/submissions/(\d+)/"', table(html, "submissions"))
    assert counted_rows == [str(chosen.pk)]
    board = client.get(reverse("leaderboard-json", args=["ntire", "dev"])).json()
    assert board["rows"][0]["submission"] == chosen.pk

    # Only a scored run can count, and only where the team chooses.
    client.post(reverse("submission-select", args=[rejected.pk]))
    assert list(Submission.objects.filter(is_selected=True).values_list("pk", flat=True)) == [chosen.pk]
    phase.selection = Phase.Selection.BEST
    phase.save()
    client.post(reverse("submission-select", args=[best.pk]))
    assert list(Submission.objects.filter(is_selected=True).values_list("pk", flat=True)) == [chosen.pk]
    html = page(client, phase_url)
    assert re.search(rf'id="counted-submission">submission {best.pk}<', html)

    # Once the phase is closed the choice stands.
    phase.selection, phase.closes_at = Phase.Selection.SELECTED, timezone.now() - timedelta(minutes=1)
    phase.save()
    html = page(client, reverse("submission-detail", args=[best.pk]))
    assert 'id="select-form"' not in html and "can no longer be changed" in html
    response = client.post(reverse("submission-select", args=[best.pk]), follow=True)
    assert "can no longer be changed" in response.content.decode()
    assert list(Submission.objects.filter(is_selected=True).values_list("pk", flat=True)) == [chosen.pk]


def test_phase_page_says_when_the_daily_count_resets(client, phase, make_team):
    alpha = make_team("Alpha")
    client.force_login(alpha.created_by)
    html = page(client, reverse("phase-detail", args=["ntire", "dev"]))
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    match = re.search(r'<p id="quota">(.*?)</p>', html, re.S)
    assert match and "resets at" in match.group(1)
    assert f'datetime="{tomorrow:%Y-%m-%d}T00:00:00+00:00"' in match.group(1)
    assert f"{tomorrow:%Y-%m-%d} 00:00 UTC" in match.group(1)
    assert re.search(r"\(in \d+\xa0(hours?|minutes?)", match.group(1))


# --------------------------------------------------------------------------- API documentation


def test_api_docs_page(client, challenge):
    html = page(client, "/api/")
    assert reverse("api-docs") == "/api/"
    for text in ("Authorization: Token", "GET /api/v1/challenges", "POST /api/v1/phases/&lt;id&gt;/uploads",
                 "POST /api/v1/uploads/&lt;id&gt;/finish", "POST /api/v1/phases/&lt;id&gt;/submissions",
                 "GET /api/v1/submissions/&lt;id&gt;", "GET /api/v1/phases/&lt;id&gt;/leaderboard",
                 "-F archive=@results.zip", '{"mode": "post"}',
                 "python -m scoring submit --server http://testserver --token $FR_TOKEN --phase 3 results.zip --wait",
                 "python -m scoring status", "python -m scoring leaderboard"):
        assert text in html, text

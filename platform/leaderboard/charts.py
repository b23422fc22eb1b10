"""Plotly figures as plain JSON data, built on the server from what the selectors return.

Every function here takes data the caller has already filtered by the phase's visibility rules (a
``Leaderboard`` that is not visible yields no chart at all), so a chart never shows more than the tables
beside it. The page puts the result in a ``<script type="application/json">`` block (``json_script``) and
static/charts.js draws it with static/vendor/plotly.min.js, served from our own origin.

Figures are ``{"data": [...], "layout": {...}}`` dicts as plotly.js takes them; numbers that are not finite
become ``null`` so the block stays valid JSON, and text from participants (team names) is escaped, since
plotly.js reads a few HTML-like tags in labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from leaderboard.selectors import Leaderboard
from scoring.aggregate import weighted_terms, weighted_total
from scoring.profile import METRIC_LABELS, ScoringProfile
from submissions.charts import (  # the figure helpers, shared with a submission's own charts
    INVALID_COLOR,
    VALID_COLOR,
    Figure,
    chart_data,
    label,
    layout,
    metric_label,
    number,
)

# --------------------------------------------------------------------------- leaderboard


def dataset_total(profile: ScoringProfile | None, metrics: Mapping[str, Any]) -> float | None:
    """The profile's formula applied to one dataset's metrics (None where a term's metric is missing)."""
    if profile is None or any(number(metrics.get(term.metric)) is None for term in profile.terms):
        return None
    return number(weighted_total(weighted_terms(profile, metrics)))


def leaderboard_charts(board: Leaderboard) -> dict[str, Any] | None:
    """The scatter of total against mean identity similarity, and per-dataset bars of the total and of each
    shown metric (``datasets-total``, ``datasets-<metric>``). None when the board is not visible."""
    if not board.visible or not board.rows:
        return None
    figures: dict[str, Figure] = {"scatter": score_scatter(board)}
    profile = ScoringProfile.from_dict(board.phase.profile_snapshot) if board.phase.profile_snapshot else None
    for key in ("total", *board.metrics):
        figures[f"datasets-{key}"] = dataset_bars(board, key, profile)
    return chart_data(figures)


def dataset_chart_options(board: Leaderboard) -> list[dict[str, str]]:
    """The choices of the per-dataset chart's selector: figure name and label."""
    return [{"figure": "datasets-total", "label": "Total"}] + [
        {"figure": f"datasets-{m}", "label": METRIC_LABELS.get(m, m)} for m in board.metrics
    ]


def score_scatter(board: Leaderboard) -> Figure:
    groups = (
        ("Ranked", [r for r in board.rows if r.valid], {"color": VALID_COLOR, "symbol": "circle", "size": 11}),
        (f"Not ranked: more than {board.phase.profile_snapshot.get('max_failed_images', 10)} identity failures",
         [r for r in board.rows if not r.valid], {"color": INVALID_COLOR, "symbol": "x", "size": 12}),
    )
    traces = []
    for name, rows, marker in groups:
        if not rows:
            continue
        traces.append({
            "type": "scatter", "mode": "markers+text", "name": name, "marker": marker,
            "x": [number(r.id_similarity) for r in rows], "y": [number(r.total) for r in rows],
            "text": [label(r.team) for r in rows], "textposition": "top center",
            "customdata": [[r.rank if r.rank is not None else "—", r.failed_images, r.submission_id]
                           for r in rows],
            "hovertemplate": ("%{text}<br>rank %{customdata[0]}<br>total %{y:.4f}<br>identity similarity "
                              "%{x:.4f}<br>%{customdata[1]} identity failure(s)<extra></extra>"),
        })
    return {"data": traces, "layout": layout("Total score against mean identity similarity",
                                             "Mean identity similarity", "Total score")}


def dataset_bars(board: Leaderboard, key: str, profile: ScoringProfile | None) -> Figure:
    """Grouped bars: one group per dataset, one bar per team (in leaderboard order)."""
    names = list(board.datasets)
    teams = [row.team for row in board.rows]
    values: dict[str, dict[str, float | None]] = {team: {} for team in teams}
    for dataset, rows in board.datasets.items():
        for r in rows:
            value = dataset_total(profile, r.metrics) if key == "total" else number(r.metrics.get(key))
            values.setdefault(r.team, {})[dataset] = value
    traces = [{
        "type": "bar", "name": label(team), "x": names, "y": [values[team].get(d) for d in names],
        "hovertemplate": f"{label(team)}<br>%{{x}}: %{{y:.4f}}<extra></extra>",
    } for team in teams]
    if key == "total":
        title, axis = "Total per dataset (the phase's formula on each dataset's means)", "Total"
    else:
        title, axis = f"{METRIC_LABELS.get(key, key)} per dataset", metric_label(key)
    return {"data": traces, "layout": layout(title, "Dataset", axis, barmode="group")}


# --------------------------------------------------------------------------- rank stability

NOT_SIGNIFICANT_COLOR = "#eef1f6"


def stability_charts(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The blob plot of each team's rank over the resamples (``blobs``) and the map of significant pairwise
    wins (``significance``), from a stored analysis the viewer may see (``selectors.rank_stability_view``)."""
    if not data or not data.get("teams"):
        return None
    return chart_data({"blobs": rank_blobs(data), "significance": significance_map(data)})


def rank_blobs(data: dict[str, Any]) -> Figure:
    """challengeR's blob plot: a disc per team and rank, its area the share of resamples giving that rank, with
    the median rank and its 95% interval over it."""
    teams = data["teams"]
    names = [label(t["team"]) for t in teams]
    resamples = max(1, int(data["resamples"]))
    x, y, size, share = [], [], [], []
    for name, t in zip(names, teams):
        for k, count in enumerate(t["rank_counts"]):
            if count:
                x.append(name)
                y.append(k + 1)
                share.append(count / resamples)
                size.append(round(6 + 34 * math.sqrt(count / resamples), 2))
    blobs = {"type": "scatter", "mode": "markers", "name": "Share of resamples", "x": x, "y": y,
             "marker": {"size": size, "color": VALID_COLOR, "opacity": 0.55, "line": {"width": 0}},
             "customdata": [round(100 * s, 1) for s in share],
             "hovertemplate": "%{x}<br>rank %{y} in %{customdata}% of the resamples<extra></extra>"}
    medians = [number(t["median_rank"]) for t in teams]
    median = {"type": "scatter", "mode": "markers", "name": "Median rank and 95% interval", "x": names,
              "y": medians, "marker": {"symbol": "line-ew-open", "size": 18, "color": INVALID_COLOR,
                                       "line": {"width": 3}},
              "error_y": {"type": "data", "symmetric": False, "color": INVALID_COLOR, "thickness": 1.5,
                          "array": [t["rank_interval"][1] - t["median_rank"] for t in teams],
                          "arrayminus": [t["median_rank"] - t["rank_interval"][0] for t in teams]},
              "hovertemplate": "%{x}<br>median rank %{y}<extra></extra>"}
    figure_layout = layout(f"Rank over {resamples} bootstrap resamples of the test images", "Team (board order)",
                           "Rank")
    figure_layout["yaxis"].update(autorange="reversed", dtick=1)
    figure_layout["xaxis"].update(type="category", categoryorder="array", categoryarray=names)
    return {"data": [blobs, median], "layout": figure_layout}


def significance_map(data: dict[str, Any]) -> Figure:
    """Row team beats column team significantly (one-sided Wilcoxon, Holm-adjusted) where the cell is dark."""
    teams = [t["team"] for t in data["teams"]]
    names = [label(t) for t in teams]
    index = {t: k for k, t in enumerate(teams)}
    z: list[list[float | None]] = [[None] * len(teams) for _ in teams]
    text: list[list[str]] = [[""] * len(teams) for _ in teams]
    for pair in data["pairs"]:
        i, j = index[pair["better"]], index[pair["worse"]]
        z[i][j] = 1.0 if pair["significant"] else 0.0
        text[i][j] = f"{pair['p_holm']:.3g}"
    heatmap = {"type": "heatmap", "x": names, "y": names, "z": z, "text": text, "zmin": 0, "zmax": 1,
               "texttemplate": "%{text}", "colorscale": [[0, NOT_SIGNIFICANT_COLOR], [1, VALID_COLOR]],
               "showscale": False, "xgap": 2,
               "ygap": 2, "hovertemplate": "%{y} better than %{x}?<br>Holm-adjusted p = %{text}<extra></extra>"}
    figure_layout = layout(f"Significant wins (dark; one-sided Wilcoxon, Holm-adjusted p in each cell, alpha "
                           f"{data['alpha']:g})",
                           "… than this team", "This team is better …")
    figure_layout["yaxis"].update(autorange="reversed", type="category")
    figure_layout["xaxis"].update(type="category")
    return {"data": [heatmap], "layout": figure_layout}

"""Plotly figures of a team's own submissions: one submission's per-image histograms, a team's score history.

The figure helpers here are shared with the leaderboard's charts (``leaderboard.charts``, whose docstring
says how pages draw them). Every function takes data the caller has already filtered by the phase's
visibility rules; numbers that are not finite become ``null`` and participant text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from scoring.profile import LOWER_IS_BETTER, METRIC_LABELS

Figure = dict[str, Any]

VALID_COLOR = "#23395d"
INVALID_COLOR = "#c0392b"
BASE_LAYOUT: dict[str, Any] = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "hovermode": "closest",
    "legend": {"orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"},
}


def number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def utc(moment: datetime) -> str:
    """A time as plotly.js reads it (no offset: it would ignore one), in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def label(text: str) -> str:
    """Participant text as plotly.js shows it literally."""
    return html.escape(str(text), quote=False)


def metric_label(key: str) -> str:
    name = METRIC_LABELS.get(key, key)
    return f"{name} ({'lower' if key in LOWER_IS_BETTER else 'higher'} is better)"


def layout(title: str, x_title: str = "", y_title: str = "", **extra: Any) -> dict[str, Any]:
    return {**BASE_LAYOUT, "title": {"text": title},
            "xaxis": {"title": {"text": x_title}, "automargin": True},
            "yaxis": {"title": {"text": y_title}, "automargin": True}, **extra}


def chart_data(figures: Mapping[str, Figure]) -> dict[str, Any]:
    """What goes into the page's JSON block: ``{"figures": {name: figure}}``, in display order."""
    return {"figures": dict(figures)}


# --------------------------------------------------------------------------- team history


def history_charts(history: Iterable[Any]) -> dict[str, Any] | None:
    """One line chart per phase (``history-<phase id>``) of the totals of the team's scored runs, from
    ``submissions.selectors.team_score_history`` (already limited to the phases the viewer may see)."""
    figures: dict[str, Figure] = {}
    for phase_history in history:
        points = phase_history.points
        traces = [{
            "type": "scatter", "mode": "lines+markers", "name": "Total",
            "x": [utc(p.created_at) for p in points], "y": [number(p.total) for p in points],
            "marker": {"color": [VALID_COLOR if p.valid else INVALID_COLOR for p in points],
                       "symbol": ["circle" if p.valid else "x" for p in points], "size": 9},
            "line": {"color": "#9aa9c2"},
            "customdata": [[p.submission_id, p.failed_images, "selected" if p.selected else ""] for p in points],
            "hovertemplate": ("submission %{customdata[0]} %{customdata[2]}<br>%{x}<br>total %{y:.4f}<br>"
                              "%{customdata[1]} identity failure(s)<extra></extra>"),
        }]
        history_layout = layout(f"{label(phase_history.phase.name)}: total per submission", "Submitted (UTC)",
                                "Total", showlegend=False)
        history_layout["xaxis"]["type"] = "date"
        if len(points) == 1:  # a lone point: a day around it rather than a millisecond
            at = points[0].created_at
            history_layout["xaxis"]["range"] = [utc(at - timedelta(hours=12)), utc(at + timedelta(hours=12))]
        figures[f"history-{phase_history.phase.pk}"] = {"data": traces, "layout": history_layout}
    return chart_data(figures) if figures else None


# --------------------------------------------------------------------------- submission


def image_histograms(images: Iterable[Any], metrics: Iterable[str]) -> dict[str, Any] | None:
    """The distribution of each metric, and of the identity similarity, across the submission's images:
    one histogram per metric (``hist-<metric>``), stacked by dataset. ``images`` are ImageScore rows of a
    result the viewer may see."""
    images = list(images)
    if not images:
        return None
    datasets = sorted({i.dataset for i in images})
    series: dict[str, tuple[str, Any]] = {"id_similarity": ("Identity similarity", lambda i: i.id_similarity)}
    for key in metrics:
        if key == "fid":  # a set-level metric: no per-image value
            continue
        series[key] = (metric_label(key), lambda i, key=key: i.metrics.get(key))
    figures: dict[str, Figure] = {}
    for key, (title, value) in series.items():
        traces = [{
            "type": "histogram", "name": label(dataset),
            "x": [number(value(i)) for i in images if i.dataset == dataset],
            "hovertemplate": f"{label(dataset)}<br>%{{x}}: %{{y}} image(s)<extra></extra>",
        } for dataset in datasets]
        hist_layout = layout(title, "", "Images", barmode="stack", height=340)
        hist_layout["legend"] = {**BASE_LAYOUT["legend"], "y": -0.12}
        figures[f"hist-{key}"] = {"data": traces, "layout": hist_layout}
    return chart_data(figures)

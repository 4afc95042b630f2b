"""Plotly figures of the dashboard, built from the SQL rows in pipestate.ui.data.

Figures are laid out here, never counted: every number comes from a store query. Every string a
user controls (pipeline, step and error names) is HTML-escaped before it reaches a figure,
because Plotly renders labels and hover text as a small subset of HTML.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pipestate.ui.data import OverviewData, RunData

STATE_ORDER = ("PENDING", "RUNNING", "RETRYING", "COMPLETED", "FAILED", "TIMEOUT")
NONE_LABEL = "(none)"
MAX_GANTT_PX = 4000  # past ~100 rows the labels shrink instead of the page growing
# Bar categories of the Gantt chart: (trace name, colour), in legend order.
GANTT_STYLES = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "timed out": "#6a1b9a",
    "failed, retried": "#ef6c00",
    "waiting to retry": "#b0bec5",
    "running": "#1565c0",
    "dependency failed": "#c62828",
    "not started": "#757575",
}
ERROR_COLOURS = {
    "TRANSIENT": "#ef6c00",
    "PERMANENT": "#c62828",
    "TIMEOUT": "#6a1b9a",
    "VALIDATION_ERROR": "#f9a825",
    "DEPENDENCY_FAILURE": "#8d6e63",
    "UNKNOWN": "#546e7a",
}
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def esc(value: object) -> str:
    """A user string made safe for Plotly's label HTML; None becomes a visible placeholder."""
    return NONE_LABEL if value is None else html.escape(str(value), quote=True)


def plotly_time(stamp: str) -> str:
    """An ISO UTC timestamp as Plotly's naive date string (the axis is labelled UTC)."""
    return dt.datetime.fromisoformat(stamp).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _ms_between(start: str, end: str) -> float:
    """Milliseconds from one ISO timestamp to another (a bar's length)."""
    delta = dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)
    return delta.total_seconds() * 1000


def _empty(fig: go.Figure, message: str) -> go.Figure:
    """Add a centred note to a figure that has nothing to show."""
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def _segment_style(seg: dict[str, Any]) -> str:
    """The Gantt category of one bar, from its kind and how it ended."""
    if seg["kind"] == "NOT_RUN":
        is_dep = seg["error_type"] == "DEPENDENCY_FAILURE"
        return "dependency failed" if is_dep else "not started"
    if seg["kind"] == "RETRYING":
        return "waiting to retry"
    return {
        None: "running",
        "COMPLETED": "completed",
        "RETRYING": "failed, retried",
        "TIMEOUT": "timed out",
    }.get(seg["outcome"], "failed")


def _entity_label(seg: dict[str, Any]) -> str:
    """A Gantt row label: the pipeline marked as such, steps by name."""
    name = esc(seg["entity_name"])
    return f"pipeline: {name}" if seg["entity_type"] == "PIPELINE" else name


def gantt(data: RunData) -> go.Figure:
    """The run's timeline: one row per entity, one bar per RUNNING or RETRYING stay."""
    rows: dict[str, None] = {}
    traces: dict[str, dict[str, list[Any]]] = {}
    for seg in data.segments:
        label = _entity_label(seg)
        rows.setdefault(label)
        style = _segment_style(seg)
        end = seg["end_time"] or data.generated_at
        bucket = traces.setdefault(style, {"y": [], "base": [], "x": [], "text": []})
        bucket["y"].append(label)
        bucket["base"].append(plotly_time(seg["start_time"]))
        bucket["x"].append(_ms_between(seg["start_time"], end))
        hover = (
            f"{label}<br>{seg['kind'].lower()} attempt {seg['retry_count'] + 1}"
            f"<br>{plotly_time(seg['start_time'])} → {plotly_time(end)}"
            f"<br>ended: {esc(seg['outcome'] or 'still running')}"
            f"<br>error type: {esc(seg['error_type'])}"
        )
        bucket["text"].append(hover)
    fig = go.Figure()
    for style, colour in GANTT_STYLES.items():
        if style not in traces:
            continue
        t = traces[style]
        if style in ("dependency failed", "not started"):
            fig.add_trace(
                go.Scatter(
                    name=style,
                    y=t["y"],
                    x=t["base"],
                    mode="markers",
                    marker={"symbol": "x", "size": 12, "color": colour},
                    hovertext=t["text"],
                    hoverinfo="text",
                )
            )
            continue
        fig.add_trace(
            go.Bar(
                name=style,
                orientation="h",
                y=t["y"],
                base=t["base"],
                x=t["x"],
                marker={"color": colour},
                hovertext=t["text"],
                hoverinfo="text",
            )
        )
    labels = list(rows)
    fig.update_layout(
        **_LAYOUT,
        barmode="overlay",
        height=min(MAX_GANTT_PX, max(220, 60 + 36 * len(labels))),
        xaxis={"type": "date", "title": "time (UTC)"},
        yaxis={"categoryorder": "array", "categoryarray": labels, "autorange": "reversed"},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    )
    return fig if labels else _empty(fig, "no steps recorded")


def errors_over_time(data: OverviewData) -> go.Figure:
    """Failures per day stacked by error type."""
    by_type: dict[str | None, tuple[list[str], list[int]]] = {}
    for row in data.errors_over_time:
        days, counts = by_type.setdefault(row["error_type"], ([], []))
        days.append(row["day"])
        counts.append(row["failures"])
    fig = go.Figure(
        [
            go.Bar(
                name=esc(kind),
                x=days,
                y=counts,
                marker={"color": ERROR_COLOURS.get(kind or "", "#90a4ae")},
            )
            for kind, (days, counts) in by_type.items()
        ]
    )
    half_day = dt.timedelta(hours=12)
    midnight = dt.datetime.combine(data.as_of, dt.time())
    first, last = midnight - dt.timedelta(days=data.days) - half_day, midnight + half_day
    fig.update_layout(
        **_LAYOUT,
        barmode="stack",
        height=320,
        xaxis={
            "type": "date",
            "range": [str(first), str(last)],
        },
        yaxis={"title": "failures"},
    )
    return fig if by_type else _empty(fig, "no failures in this window")


def _retry_bars(rows: Iterable[dict[str, Any]], name: str) -> go.Bar:
    """Success-rate bars of one dimension, labelled recovered/retried."""
    rows = list(rows)
    return go.Bar(
        name=name,
        x=[esc(r["name"]) for r in rows],
        y=[r["success_rate"] * 100 for r in rows],
        text=[f"{r['recovered_steps']}/{r['retried_steps']}" for r in rows],
        textposition="outside",
        hovertemplate="%{x}: %{y:.1f}% recovered (%{text})<extra></extra>",
    )


def retry_success(data: OverviewData) -> go.Figure:
    """Share of retried steps that then completed, by pipeline and by error type."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("by pipeline", "by error type"))
    pipelines = [r for r in data.retry_success if r["dimension"] == "pipeline"]
    kinds = [r for r in data.retry_success if r["dimension"] == "error_type"]
    fig.add_trace(_retry_bars(pipelines, "by pipeline"), row=1, col=1)
    fig.add_trace(_retry_bars(kinds, "by error type"), row=1, col=2)
    fig.update_layout(**_LAYOUT, height=320, showlegend=False)
    fig.update_yaxes(range=[0, 115], title_text="% recovered", col=1)
    fig.update_yaxes(range=[0, 115], col=2)
    return fig if data.retry_success else _empty(fig, "no step retried in this window")


def _states(rows: Sequence[dict[str, Any]], *keys: str) -> list[str]:
    """The known states in lifecycle order, then any other value seen."""
    seen = {r[k] for r in rows for k in keys}
    return [s for s in STATE_ORDER if s in seen] + sorted(seen - set(STATE_ORDER))


def transition_heatmap(data: OverviewData) -> go.Figure:
    """Transition counts, from_state (rows) x to_state (columns)."""
    rows = data.transition_heatmap
    froms, tos = _states(rows, "from_state"), _states(rows, "to_state")
    z: list[list[int | None]] = [[None] * len(tos) for _ in froms]
    for row in rows:
        z[froms.index(row["from_state"])][tos.index(row["to_state"])] = row["transitions"]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[esc(s) for s in tos],
            y=[esc(s) for s in froms],
            colorscale="Blues",
            texttemplate="%{z}",
            hovertemplate="%{y} → %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        **_LAYOUT,
        height=320,
        xaxis={"title": "to state", "type": "category"},
        yaxis={"title": "from state", "type": "category", "autorange": "reversed"},
    )
    return fig if rows else _empty(fig, "no transitions in this window")


def failure_heatmap(data: OverviewData) -> go.Figure:
    """Failures by UTC day (rows) and hour of day (columns)."""
    days = [str(data.as_of - dt.timedelta(days=n)) for n in range(data.days, -1, -1)]
    z: list[list[int]] = [[0] * 24 for _ in days]
    for row in data.failure_heatmap:
        z[days.index(row["day"])][row["hour"]] = row["failures"]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(24)),
            y=days,
            colorscale="Reds",
            hovertemplate="%{y} %{x}:00 UTC: %{z} failures<extra></extra>",
        )
    )
    fig.update_layout(
        **_LAYOUT,
        height=max(260, 80 + 22 * len(days)),
        xaxis={"title": "hour of day (UTC)", "dtick": 1},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return fig

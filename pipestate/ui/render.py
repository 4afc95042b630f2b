"""Pages as HTML: Jinja2 templates (autoescaped) plus the figures of pipestate.ui.charts.

A page is rendered either for the server (Plotly's script served from /ui/static, the CSP sent
as a header) or for an offline report (Plotly's script and a CSP meta tag inlined, no network).
Figures travel as JSON inside <script type="application/json"> blocks, with <, > and & written
as \\u escapes so no data can close the block.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import urllib.parse
from collections.abc import Sequence
from typing import Any

import attrs
import jinja2
import plotly
import plotly.graph_objects as go
from markupsafe import Markup

from pipestate.ui import charts
from pipestate.ui.data import RUN_STATES, OverviewData, RunData, RunFilters

PLOTLY_VERSION = plotly.__version__
# Plotly injects <style> elements and style attributes, so styles need 'unsafe-inline'; scripts
# run only with the page's nonce (or from our own origin, for the served plotly.js).
CSP_SERVED = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
CSP_REPORT = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; form-action 'none'; base-uri 'none'"
)
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


@attrs.frozen
class Figure:
    """One chart on a page: the element id and its Plotly JSON, safe inside a script block."""

    id: str
    json: Markup


@attrs.frozen
class Page:
    """What the base template needs besides the page's own data."""

    served: bool
    nonce: str
    org: str | None = None
    base: str = "/ui"
    section: str = ""
    figures: Sequence[Figure] = ()
    plotly_src: str = ""
    plotly_inline: Markup | None = None
    csp_meta: str | None = None
    poll_ms: int = 2000
    generated_at: str = ""


def new_nonce() -> str:
    """A fresh, unguessable CSP nonce for one response."""
    return secrets.token_urlsafe(18)


def figure(element_id: str, fig: go.Figure) -> Figure:
    """Embed a Plotly figure: its JSON with the characters that could end a script escaped."""
    return Figure(element_id, Markup(fig.to_json().translate(_JSON_ESCAPES)))


@functools.cache
def plotly_js() -> str:
    """plotly.min.js as shipped inside the plotly Python package (works offline)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _when(value: str | None) -> str:
    """An ISO UTC timestamp shown to the second."""
    if not value:
        return ""
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@functools.cache
def environment() -> jinja2.Environment:
    """The template environment: autoescape everywhere, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipestate.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["segment"] = lambda v: urllib.parse.quote(str(v), safe="")
    env.filters["when"] = _when
    return env


def page_for(
    *, served: bool, org: str | None, section: str, figures: Sequence[Figure] = (), **extra: Any
) -> Page:
    """A Page for the server or for a report, with a fresh nonce."""
    nonce = new_nonce()
    if served:
        return Page(
            served=True,
            nonce=nonce,
            org=org,
            section=section,
            figures=figures,
            plotly_src=f"{extra.pop('base', '/ui')}/static/plotly-{PLOTLY_VERSION}.min.js",
            **extra,
        )
    return Page(
        served=False,
        nonce=nonce,
        org=org,
        section=section,
        figures=figures,
        plotly_inline=Markup(plotly_js().replace("</script", "<\\/script")),
        csp_meta=CSP_REPORT.format(nonce=nonce),
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **extra,
    )


def overview_figures(data: OverviewData) -> list[Figure]:
    """The overview's four charts."""
    return [
        figure("fig-errors", charts.errors_over_time(data)),
        figure("fig-retries", charts.retry_success(data)),
        figure("fig-transitions", charts.transition_heatmap(data)),
        figure("fig-failures", charts.failure_heatmap(data)),
    ]


def render_overview(data: OverviewData, page: Page, runs: list[dict[str, Any]] | None) -> str:
    """The overview page (with a recent-runs table in reports)."""
    return environment().get_template("overview.html").render(page=page, data=data, runs=runs)


def render_runs(
    runs: list[dict[str, Any]], filters: RunFilters, page: Page, error: str | None = None
) -> str:
    """The runs list with its filter form."""
    return (
        environment()
        .get_template("runs.html")
        .render(page=page, runs=runs, filters=filters, states=RUN_STATES, error=error)
    )


def render_run(data: RunData, page: Page) -> str:
    """One run: Gantt, error context, transitions; live polling while it runs (served only)."""
    return environment().get_template("run.html").render(page=page, data=data)


def render_login(page: Page, *, hours: float, error: str | None = None) -> str:
    """The sign-in form."""
    return environment().get_template("login.html").render(page=page, hours=hours, error=error)

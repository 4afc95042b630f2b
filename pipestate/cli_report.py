"""`pipestate report`: write the dashboard as one offline HTML file (needs pipestate[ui])."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from pipestate.cli import ConfigError, _store_option, open_store_or_fail


@click.command("report")
@_store_option
@click.option("--org", envvar="PIPESTATE_ORG", show_envvar=True, required=True, help="Org slug.")
@click.option("--run", "run_id", default=None, help="Report on this run (pipeline_logging_id).")
@click.option(
    "--days", type=click.IntRange(1, 366), default=7, show_default=True, help="Overview window."
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Last day of the window (UTC, default today).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
def report(
    store: str, org: str, run_id: str | None, days: int, as_of: dt.datetime | None, out: Path
) -> None:
    """Write one self-contained HTML report (charts work offline) for an org or one run."""
    try:
        from pipestate.ui.report import UnknownRun, build_report
    except ImportError as exc:
        raise ConfigError(
            f"pipestate report needs the ui extra: pip install 'pipestate[ui]' ({exc})."
        ) from None
    backend = open_store_or_fail(store, outbox=False)
    try:
        html = build_report(
            backend, org, run_id=run_id, days=days, as_of=as_of.date() if as_of else None
        )
    except UnknownRun as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        backend.close()
    out.write_text(html, encoding="utf-8")
    click.echo(f"wrote {out} ({out.stat().st_size / 1_000_000:.2f} MB)")

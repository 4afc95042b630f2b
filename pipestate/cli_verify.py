"""`pipestate verify`: check the stored transitions against the tables and the joint rules.

Exit codes: 0 no violation, 1 violations found, 2 a usage or store error.
"""

from __future__ import annotations

import datetime as dt
import json

import click

from pipestate.cli import EXIT_FAILED, EXIT_OK, ConfigError, _store_option, open_store_or_fail


def _date(_ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    """A YYYY-MM-DD option value as a date."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date YYYY-MM-DD (got {value!r})") from None


@click.command("verify")
@_store_option
@click.option("--org", default=None, help="Check one organisation's rows only.")
@click.option("--run", "run_id", default=None, help="Check one pipeline_logging_id only.")
@click.option("--since", callback=_date, help="Runs with a row on or after this date (UTC).")
@click.option("--until", callback=_date, help="Runs with a row on or before this date (UTC).")
@click.option(
    "--tolerance-ms",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Allowed gap between a duration and its timestamps (plus 1%).",
)
@click.option(
    "--max-per-kind",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="List at most this many violations of each kind (all are counted).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def verify_command(
    store: str,
    org: str | None,
    run_id: str | None,
    since: dt.date | None,
    until: dt.date | None,
    tolerance_ms: int,
    max_per_kind: int,
    as_json: bool,
) -> int:
    """Check every stored chain: legal edges, continuity, durations, joint rules."""
    from persistence.stores.base import StoreError
    from persistence.verify import verify

    if since is not None and until is not None and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}")
    opened = open_store_or_fail(store, outbox=False)
    try:
        report = verify(
            opened,
            org=org,
            run=run_id,
            since=since,
            until=until,
            tolerance_ms=tolerance_ms,
            max_per_kind=max_per_kind,
        )
    except StoreError as exc:
        raise ConfigError(f"--store {store!r}: {exc}") from None
    finally:
        opened.close()
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    return EXIT_OK if report.clean else EXIT_FAILED

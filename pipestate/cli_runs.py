"""`pipestate runs`: recent pipeline runs with id, pipeline, state, start, duration, error type."""

from __future__ import annotations

import click

from pipestate.cli import EXIT_OK, ConfigError, _debug_option, _json_option, _store_option


@click.command("runs")
@_store_option
@click.option("--pipeline", "pipeline_id", default=None, help="Only runs of this pipeline id.")
@click.option(
    "--state",
    type=click.Choice(["PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT"], False),
    default=None,
    help="Only runs in this state.",
)
@click.option("--org", "org_slug", default=None, help="Only runs of this organisation.")
@click.option("--days", type=click.IntRange(min=0), default=7, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--wide", is_flag=True, help="Keep each row on one line (ids never fold).")
@_json_option
@_debug_option
def runs(
    store: str,
    pipeline_id: str | None,
    state: str | None,
    org_slug: str | None,
    days: int,
    limit: int,
    wide: bool,
    as_json: bool,
    debug: bool,
) -> int:
    """List recent runs, newest first (whole pipeline_logging_ids, for `query timeline`)."""
    from persistence.queries import QueryError, run_query
    from pipestate._cli_output import print_rows, row_count, to_json
    from pipestate._store_check import require_existing
    from pipestate.cli import open_store_or_fail

    backend = open_store_or_fail(store, outbox=False)
    try:
        require_existing(backend, store)
        rows = run_query(
            backend,
            "runs",
            pipeline_id=pipeline_id,
            state=state.upper() if state else None,
            org_slug=org_slug,
            days=days,
            limit=limit,
        )
    except QueryError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        backend.close()
    if as_json:
        click.echo(to_json(rows))
        return EXIT_OK
    table = [
        {
            "pipeline_logging_id": r["pipeline_logging_id"],
            "pipeline": r["pipeline_id"],
            "org": r["org_slug"],
            "state": r["state"] + (" (cancelled)" if r["cancelled"] else ""),
            "start": r["start_time"],
            "duration_s": r["duration_seconds"],
            "error_type": r["error_type"],
        }
        for r in rows
    ]
    print_rows(table, title=f"runs ({row_count(len(rows))})", wide=wide)
    return EXIT_OK

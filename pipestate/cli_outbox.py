"""`pipestate outbox status|flush`: show and drain the durable outbox of a remote store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

# Same default as persistence.outbox.DEFAULT_PATH; not imported so `pipestate --help` stays fast.
DEFAULT_PATH = "pipestate-outbox.db"
OUTBOX_ENV = "PIPESTATE_OUTBOX"
STORE_ENV = "PIPESTATE_STORE"

_outbox_option = click.option(
    "--outbox",
    "outbox_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get(OUTBOX_ENV, DEFAULT_PATH),
    show_default=f"${OUTBOX_ENV} or {DEFAULT_PATH}",
    help="The outbox file.",
)


def _read_status(path: Path) -> dict[str, Any]:
    """Read an outbox file's status without a remote; never creates the file."""
    from persistence._outbox_db import OutboxDB

    if not path.exists():
        return {"path": str(path), "exists": False, "pending": {}, "pending_total": 0}
    db = OutboxDB(path)
    try:
        status = db.snapshot()
        status["recent_dead_letters"] = db.dead_letter_rows(limit=5)
    finally:
        db.close()
    return {"path": str(path), "exists": True, **status}


def _print_status(status: dict[str, Any]) -> None:
    """Print a short human summary of an outbox status."""
    if not status["exists"]:
        click.echo(f"no outbox at {status['path']} (nothing pending)")
        return
    click.echo(f"outbox {status['path']}")
    click.echo(f"  pending: {status['pending_total']}")
    for table, count in sorted(status["pending"].items()):
        click.echo(f"    {table}: {count}")
    age = status["oldest_pending_age_seconds"]
    if age is not None:
        click.echo(f"  oldest pending: {age:.1f} s ago")
    click.echo(f"  dead letters: {status['dead_letters_total']}")
    for table, count in sorted(status["dead_letters"].items()):
        click.echo(f"    {table}: {count}")
    for dead in status.get("recent_dead_letters", []):
        click.echo(f"    - {dead['table_name']} {dead['row_id']}: {dead['error']}")
    if status["last_row_error"]:
        click.echo(f"  last error: {status['last_row_error']}")


@click.group("outbox")
def outbox() -> None:
    """Show and drain the local outbox that feeds a remote store (BigQuery)."""


@outbox.command("status")
@_outbox_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(outbox_path: Path, as_json: bool) -> None:
    """Show rows pending per table, dead letters, the oldest pending age and the last error."""
    status = _read_status(outbox_path)
    if as_json:
        click.echo(json.dumps(status, indent=2, sort_keys=True, default=str))
    else:
        _print_status(status)


@outbox.command("flush")
@_outbox_option
@click.option(
    "--store",
    "store_url",
    default=lambda: os.environ.get(STORE_ENV),
    show_default=f"${STORE_ENV}",
    help="The remote store, e.g. bigquery:PROJECT.DATASET.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to keep shipping before giving up (rows left stay in the outbox).",
)
@click.option(
    "--requeue-dead-letters",
    is_flag=True,
    help="Move dead letters back into the outbox first (after fixing what the remote refused).",
)
def flush_command(
    outbox_path: Path, store_url: str | None, timeout: float, requeue_dead_letters: bool
) -> None:
    """Ship every pending row to the remote store now; exit 1 if some are left."""
    from persistence.outbox import OutboxStore, open_remote

    if not store_url:
        raise click.UsageError(f"--store is required (or set ${STORE_ENV}).")
    if not outbox_path.exists():
        click.echo(f"no outbox at {outbox_path} (nothing to flush)")
        return
    remote = open_remote(store_url)
    store = OutboxStore(remote, outbox_path)
    started = time.monotonic()
    try:
        if requeue_dead_letters:
            click.echo(f"requeued {store.requeue_dead_letters()} dead letters")
        left = store.drain(timeout)
        status = store.status()
    finally:
        store.close(timeout=0)
    elapsed = time.monotonic() - started
    click.echo(
        f"shipped {status['rows_shipped']} rows to {store_url} in {elapsed:.1f} s; "
        f"{status['rows_dead_lettered']} newly dead-lettered; {left} pending, "
        f"{status['dead_letters_total']} dead letters in total"
    )
    if left:
        if status["last_error"]:
            click.echo(f"last error: {status['last_error']}", err=True)
        click.get_current_context().exit(1)

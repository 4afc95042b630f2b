"""`pipestate purge --older-than DAYS`: local partition expiration for a SQLite store."""

from __future__ import annotations

import click

from pipestate.cli import EXIT_OK, ConfigError, _debug_option, _json_option, _store_option


@click.command("purge")
@_store_option
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    required=True,
    metavar="DAYS",
    help="Delete rows whose partition date is more than DAYS days ago.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@_json_option
@_debug_option
def purge(store: str, days: int, dry_run: bool, as_json: bool, debug: bool) -> int:
    """Delete audit rows older than DAYS days from a SQLite store (BigQuery expires its own)."""
    import json

    from persistence.stores.sqlite import SQLiteStore
    from pipestate._store_check import require_existing
    from pipestate.cli import open_store_or_fail

    backend = open_store_or_fail(store, outbox=False)
    try:
        if not isinstance(backend, SQLiteStore):
            raise ConfigError(
                f"--store {store}: purge works on sqlite: stores; BigQuery drops old partitions "
                f"itself (partition_expiration_days, set by bootstrap)."
            )
        require_existing(backend, store)
        deleted = _count_older(backend, days) if dry_run else backend.purge_older_than(days)
    finally:
        backend.close()
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "older_than_days": days, "rows": deleted}))
        return EXIT_OK
    verb = "Would delete" if dry_run else "Deleted"
    total = sum(deleted.values())
    parts = ", ".join(f"{table}: {n}" for table, n in deleted.items())
    click.echo(f"{verb} {total} row{'s' if total != 1 else ''} older than {days} days ({parts}).")
    return EXIT_OK


def _count_older(store: object, days: int) -> dict[str, int]:
    """Rows purge would delete, per table, without deleting them."""
    import datetime as dt
    import sqlite3

    from persistence.schema import load_table_specs
    from persistence.stores.sqlite import SQLiteStore

    assert isinstance(store, SQLiteStore)
    cutoff = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)).isoformat()
    counts: dict[str, int] = {}
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for spec in load_table_specs():
            if spec.name not in tables:
                counts[spec.name] = 0
                continue
            sql = f'SELECT COUNT(*) FROM "{spec.name}" WHERE "{spec.partition_field}" < ?'
            counts[spec.name] = int(conn.execute(sql, (cutoff,)).fetchone()[0])
    finally:
        conn.close()
    return counts

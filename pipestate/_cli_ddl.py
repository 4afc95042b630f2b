"""`pipestate bootstrap --dry-run` on BigQuery: print the DDL offline, no credentials needed."""

from __future__ import annotations

import json
import os

import click


def print_bigquery_ddl(url: str, partition_expiration_days: int | None, *, as_json: bool) -> int:
    """Print the statements bootstrap would apply to bigquery:PROJECT[.DATASET]; return 0."""
    from persistence.schema import dataset_name, load_table_specs
    from persistence.stores._bigquery_ddl import create_ddl
    from pipestate.cli import EXIT_OK, ConfigError

    project, _, dataset = url.partition(":")[2].partition(".")
    location = os.environ.get("PIPESTATE_BQ_LOCATION") or None
    try:
        statements = create_ddl(
            project,
            dataset or dataset_name(),
            load_table_specs(partition_expiration_days),
            location,
        )
    except ValueError as exc:
        raise ConfigError(f"--store {url!r}: {exc}") from None
    if as_json:
        click.echo(json.dumps({"dry_run": True, "offline": True, "ddl": statements}, indent=2))
    else:
        click.echo("-- Dry run (offline): the statements bootstrap would apply, idempotently.")
        click.echo("\n\n".join(statements))
    return EXIT_OK

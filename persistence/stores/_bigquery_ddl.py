"""Bootstrap pieces for BigQueryStore: TableSpec -> google Table, and the action lines."""

from __future__ import annotations

from typing import Any

from persistence.schema import TableSpec

_DAY_MS = 86_400_000


def dataset_action(dataset_id: str, location: str | None) -> str:
    """The action line for creating a dataset."""
    where = f" in {location}" if location else ""
    return f"create dataset {dataset_id}{where}"


def table_action(ref: str, spec: TableSpec) -> str:
    """The action line for creating a table ("create table <ref> (...)", see Bootstrappable)."""
    details = [
        f"{len(spec.fields)} columns",
        f"{spec.partition_type} partitions on {spec.partition_field}",
    ]
    if spec.expiration_days is not None:
        details[-1] += f" expiring after {spec.expiration_days} days"
    if spec.clustering:
        details.append(f"clustered by {', '.join(spec.clustering)}")
    return f"create table {ref} ({'; '.join(details)})"


def to_table(ref: str, spec: TableSpec) -> Any:
    """A google.cloud.bigquery.Table with the spec's schema, partitioning and clustering.

    Partition expiration is set here, at creation: ALTER TABLE ... SET OPTIONS is a no-op on the
    local emulator, and setting it up front needs no second call on BigQuery either.
    """
    from google.cloud import bigquery

    schema = [
        bigquery.SchemaField(f.name, f.type, mode=f.mode, description=f.description)
        for f in spec.fields
    ]
    table = bigquery.Table(ref, schema=schema)
    expiration = None if spec.expiration_days is None else spec.expiration_days * _DAY_MS
    table.time_partitioning = bigquery.TimePartitioning(
        type_=spec.partition_type, field=spec.partition_field, expiration_ms=expiration
    )
    if spec.clustering:
        table.clustering_fields = list(spec.clustering)
    if spec.description:
        table.description = spec.description
    return table


_DDL_TYPES = {"INTEGER": "INT64", "STRING": "STRING", "TIMESTAMP": "TIMESTAMP"}


def _quote(text: str) -> str:
    """A BigQuery string literal (descriptions come from our schema files, escaped anyway)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def create_ddl(
    project: str, dataset: str, specs: tuple[TableSpec, ...], location: str | None = None
) -> list[str]:
    """The CREATE SCHEMA / CREATE TABLE statements bootstrap applies, for review (dry run).

    Built offline from the schema files; names are checked against BigQuery's identifier
    rules first, so the statements are safe to paste into the console.
    """
    from persistence.stores._bigquery_rows import validate_name, validate_project

    validate_project(project)
    validate_name("dataset", dataset)
    options = f"\nOPTIONS (location = {_quote(location)})" if location else ""
    statements = [f"CREATE SCHEMA IF NOT EXISTS `{project}.{dataset}`{options};"]
    for spec in specs:
        validate_name("table", spec.name)
        columns = []
        for field in spec.fields:
            column = f"  {field.name} {_DDL_TYPES.get(field.type, field.type)}"
            if field.mode == "REQUIRED":
                column += " NOT NULL"
            if field.description:
                column += f" OPTIONS (description = {_quote(field.description)})"
            columns.append(column)
        partition = (
            spec.partition_field
            if spec.partition_type == "DAY" and _is_date(spec, spec.partition_field)
            else f"TIMESTAMP_TRUNC({spec.partition_field}, {spec.partition_type})"
        )
        table_options = []
        if spec.expiration_days is not None:
            table_options.append(f"partition_expiration_days = {spec.expiration_days}")
        if spec.description:
            table_options.append(f"description = {_quote(spec.description)}")
        lines = [
            f"CREATE TABLE IF NOT EXISTS `{project}.{dataset}.{spec.name}` (",
            ",\n".join(columns),
            ")",
            f"PARTITION BY {partition}",
        ]
        if spec.clustering:
            lines.append(f"CLUSTER BY {', '.join(spec.clustering)}")
        if table_options:
            lines.append(f"OPTIONS ({', '.join(table_options)})")
        statements.append("\n".join(lines) + ";")
    return statements


def _is_date(spec: TableSpec, name: str) -> bool:
    """True when the partition column is a DATE (partitioned on itself)."""
    return any(f.name == name and f.type == "DATE" for f in spec.fields)

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

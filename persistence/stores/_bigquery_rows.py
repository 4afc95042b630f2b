"""Pure helpers for BigQueryStore: identifiers, JSON-ready rows, request chunks, error mapping.

Nothing here imports google-cloud-bigquery, so these pieces are cheap to import and to test.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from persistence.schema import TableSpec
from persistence.stores.base import RowError

# BigQuery's streaming limits are 50,000 rows and 10 MB per request; Google recommends at most
# 500 rows, and we stay well under the byte limit (leaving room for the request envelope).
MAX_ROWS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 5 * 1024 * 1024 - 64 * 1024
_ROW_OVERHEAD_BYTES = 64  # {"insertId": ..., "json": ...} around each row

# Project ids: lowercase letters, digits and hyphens (optionally domain-scoped, "example.com:p").
_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{0,61}[a-z0-9]$")
# Datasets and our tables: letters, digits and underscores, not starting with a digit.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")


def validate_project(project: str) -> str:
    """Return the project id, or raise ValueError naming it and the accepted form."""
    if not isinstance(project, str) or not _PROJECT.fullmatch(project):
        raise ValueError(
            f"BigQuery project must match {_PROJECT.pattern} (lowercase letters, digits, "
            f"hyphens) (got {project!r})."
        )
    return project


def validate_name(kind: str, value: str) -> str:
    """Return a dataset or table name, or raise ValueError naming it and the accepted form."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"BigQuery {kind} must match {_NAME.pattern} (letters, digits, underscores) "
            f"(got {value!r})."
        )
    return value


def _json_value(field_type: str | None, column: str, value: Any) -> Any:
    """Convert one value to what insertAll's JSON accepts for the column's type."""
    if value is None:
        return None
    if field_type == "JSON":
        # JSON columns take JSON text; records already serialise metadata to a string. Text that
        # is not JSON is refused here, by row, as BigQuery would (the emulator instead fails the
        # whole request and, worse, remembers the insertId as if the row had landed).
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError as exc:
                raise ValueError(f"{column}: not valid JSON text ({exc}): {value[:80]!r}") from None
            return value
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)  # BigQuery reads zone-less timestamps as UTC
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str | int | float):
        # The client would fail the whole request on json.dumps; refuse just this row.
        raise ValueError(f"{column}: cannot send a {type(value).__name__} value ({value!r:.80})")
    return value


def prepare_row(spec: TableSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready copy of a row; ValueError (naming the column) for JSON text that is not JSON.

    Unknown columns and missing required ones pass through: BigQuery rejects those by row.
    """
    types = {f.name: f.type for f in spec.fields}
    return {k: _json_value(types.get(k), k, v) for k, v in row.items()}


def row_id(spec: TableSpec, row: Mapping[str, Any]) -> str | None:
    """The row's insert key (its id column as text), or None when it has none."""
    value = row.get(spec.id_column)
    return None if value is None or value == "" else str(value)


def missing_id_label(spec: TableSpec, index: int) -> str:
    """How a row without an insert key is named in its RowError."""
    return f"<row {index} without {spec.id_column}>"


def _encoded_size(row: Mapping[str, Any], insert_id: str) -> int:
    """Approximate bytes a row adds to an insertAll request."""
    body = json.dumps(row, ensure_ascii=False, default=str)
    return len(body.encode("utf-8")) + len(insert_id) + _ROW_OVERHEAD_BYTES


def chunks(
    rows: Sequence[dict[str, Any]],
    ids: Sequence[str],
    *,
    max_rows: int = MAX_ROWS_PER_REQUEST,
    max_bytes: int = MAX_BYTES_PER_REQUEST,
) -> Iterator[tuple[list[dict[str, Any]], list[str]]]:
    """Split rows into requests under both limits; an oversized row travels alone."""
    batch: list[dict[str, Any]] = []
    batch_ids: list[str] = []
    size = 0
    for row, insert_id in zip(rows, ids, strict=True):
        row_size = _encoded_size(row, insert_id)
        if batch and (len(batch) >= max_rows or size + row_size > max_bytes):
            yield batch, batch_ids
            batch, batch_ids, size = [], [], 0
        batch.append(row)
        batch_ids.append(insert_id)
        size += row_size
    if batch:
        yield batch, batch_ids


def describe_insert_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One readable line from insertAll's per-row errors: 'location: message (reason)'."""
    parts = []
    for error in errors:
        location = error.get("location") or "row"
        message = error.get("message") or "rejected"
        parts.append(f"{location}: {message} ({error.get('reason', 'invalid')})")
    return "; ".join(parts)


def split_insert_errors(
    table: str, ids: Sequence[str], errors: Sequence[Mapping[str, Any]]
) -> tuple[list[RowError], list[int]]:
    """Map insertAll errors to RowErrors, plus the indexes only 'stopped' by another row."""
    rejected: list[RowError] = []
    stopped: list[int] = []
    for entry in errors:
        index = int(entry.get("index", -1))
        row_errors = list(entry.get("errors") or ())
        name = ids[index] if 0 <= index < len(ids) else f"<row {index}>"
        if row_errors and all(e.get("reason") == "stopped" for e in row_errors):
            stopped.append(index)  # valid row held back by an invalid one: send it again
            continue
        rejected.append(RowError(name, f"{table}: {describe_insert_errors(row_errors)}"))
    return rejected, stopped


def scalar_type(value: Any) -> str:
    """The BigQuery scalar type of a query parameter's Python value."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, str):
        return "STRING"
    raise ValueError(
        f"query parameter must be bool, int, float, str, date or datetime (got {value!r})."
    )

"""Row preparation for SQLite: canonical timestamps, JSON text, NOT NULL checks up front."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from persistence.schema import TableSpec
from persistence.stores.base import RowError

CANONICAL_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%f+00:00"
_CANONICAL_LENGTH = 32


def canonical_timestamp(value: object) -> str:
    """Fixed-width UTC text (microseconds, +00:00) so text order is time order in SQLite."""
    if isinstance(value, str):
        if len(value) == _CANONICAL_LENGTH and value[19] == "." and value.endswith("+00:00"):
            return value  # already canonical: the common case from TransitionRecord.to_row()
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a timestamp (got {value!r} that is a {type(value).__name__})")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # BigQuery reads a zone-less timestamp as UTC
    return value.astimezone(dt.UTC).strftime(CANONICAL_TIMESTAMP)


def canonical_date(value: object) -> str:
    """ISO date text."""
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value  # already YYYY-MM-DD (the common case); SQLite compares it as text
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return dt.date.fromisoformat(value).isoformat()
    raise ValueError(f"expected a date (got {value!r} that is a {type(value).__name__})")


def json_text(value: object) -> str:
    """JSON columns hold text; dicts and lists are serialised, strings must already be JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def canonical_param(value: Any) -> Any:
    """Query parameters in the stored representation (dates and timestamps as canonical text)."""
    if isinstance(value, dt.datetime):
        return canonical_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_CONVERTERS: dict[str, Callable[[object], object]] = {
    "TIMESTAMP": canonical_timestamp,
    "DATE": canonical_date,
    "JSON": json_text,
}


class RowPreparer:
    """Turns mapping rows into value tuples in column order, rejecting bad rows by id."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.columns = spec.column_names
        self.required_indexes = tuple(i for i, f in enumerate(spec.fields) if f.required)
        self.converter_items = tuple(
            (i, _CONVERTERS[f.type]) for i, f in enumerate(spec.fields) if f.type in _CONVERTERS
        )
        self.column_set = frozenset(self.columns)
        self.id_index = self.columns.index(spec.id_column)
        names = ", ".join(f'"{c}"' for c in self.columns)
        marks = ", ".join("?" for _ in self.columns)
        self.insert_sql = f'INSERT OR IGNORE INTO "{spec.name}" ({names}) VALUES ({marks})'

    def row_id(self, row: Mapping[str, Any], index: int) -> str:
        """The row's insert key, or a positional label when it has none."""
        value = row.get(self.spec.id_column)
        return str(value) if value is not None else f"<row {index} without {self.spec.id_column}>"

    def prepare(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[Any]], list[RowError]]:
        """Return value lists (column order) for good rows and a RowError for each bad one."""
        good: list[list[Any]] = []
        bad: list[RowError] = []
        columns, column_set = self.columns, self.column_set
        required, converters = self.required_indexes, self.converter_items
        for index, row in enumerate(rows):
            try:
                if not row.keys() <= column_set:
                    raise ValueError(f"unknown column(s) {sorted(row.keys() - column_set)}")
                values = [row.get(column) for column in columns]
                for i in required:
                    if values[i] is None:
                        raise ValueError(f"required column {columns[i]!r} is missing or null")
                for i, convert in converters:
                    value = values[i]
                    if value is not None:
                        values[i] = convert(value)
            except Exception as exc:  # any malformed value rejects this row only
                bad.append(RowError(self.row_id(row, index), f"{self.spec.name}: {exc}"))
                continue
            good.append(values)
        return good, bad

"""Row preparation for SQLite: canonical timestamps, JSON text, NOT NULL checks up front."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import operator
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from persistence.schema import TableSpec
from persistence.stores._sqlite_columns import (
    CANONICAL_LENGTH,
    COLUMN_CONVERTERS,
    TEXT_COLUMN_CONVERTERS,
    metadata_json,
)
from persistence.stores.base import RowError
from statemachine.records import RECORD_FIELDS, TransitionRecord

# SQLITE_MAX_VARIABLE_NUMBER: 999 before SQLite 3.32, 32,766 since.
_MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
# Rows per multi-row INSERT: each statement hands the GIL to a busy event loop and back (up to
# sys.getswitchinterval() each way), so fewer, larger statements keep a commit from trailing
# its rows by tens of milliseconds; 500 bounds the SQL text SQLite compiles per statement.
_MAX_ROWS_PER_STATEMENT = 500
_SQL_CACHE_SIZE = 64  # distinct row counts kept per table (group commit sizes vary)
_UTC = dt.UTC
_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_timestamp(value: object) -> str:
    """Fixed-width UTC text (microseconds, +00:00) so text order is time order in SQLite."""
    if isinstance(value, str):
        if len(value) == CANONICAL_LENGTH and value[19] == "." and value.endswith("+00:00"):
            return value  # already canonical: the common case from TransitionRecord.to_row()
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a timestamp (got {value!r} that is a {type(value).__name__})")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # BigQuery reads a zone-less timestamp as UTC
    # isoformat, not strftime(CANONICAL_TIMESTAMP): glibc's %Y does not pad years before 1000.
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


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


def record_timestamp(value: dt.datetime) -> str:
    """canonical_timestamp for a record's UTC datetime; isoformat() already is, with a fraction."""
    if value.microsecond and value.tzinfo is _UTC:
        return value.isoformat()
    return canonical_timestamp(value)


def record_date(value: dt.date) -> str:
    """canonical_date for a record's date."""
    return value.isoformat() if type(value) is dt.date else canonical_date(value)


def encodable_values(values: Sequence[Any]) -> list[Any]:
    """A copy of a value list whose strings hold no lone surrogate (replaced by U+FFFD).

    SQLite stores text as UTF-8, which cannot hold a lone surrogate: sqlite3 raises
    UnicodeEncodeError for the whole executemany, so the store repairs only then.
    """
    out = list(values)
    for i, value in enumerate(out):
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                out[i] = _SURROGATE.sub("\ufffd", value)
    return out


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
# The same conversions for a TransitionRecord's attribute values (known types: cheaper).
_RECORD_CONVERTERS: dict[str, Callable[[Any], object]] = {
    "TIMESTAMP": record_timestamp,
    "DATE": record_date,
    "JSON": metadata_json,
}


class RecordValues(NamedTuple):
    """A TransitionRecord's field values in RECORD_FIELDS order, as the writer process gets them.

    The transitions table's columns are RECORD_FIELDS in that order, so these are its insert
    parameters before conversion: the writer process inserts them without rebuilding a record,
    and persistence._derive reads their fields by name as it reads a record's.
    Build one with record_values(values).
    """

    transition_id: str
    org_slug: str
    pipeline_logging_id: str
    step_logging_id: str | None
    entity_type: str
    entity_name: str
    from_state: str
    to_state: str
    transition_time: dt.datetime
    transition_date: dt.date
    reason: str | None
    error_type: str | None
    error_message: str | None
    stack_trace_truncated: str | None
    retry_count: int
    duration_in_state_ms: int
    metadata: dict[str, Any]
    trigger_type: str | None
    user_id: str | None


if RecordValues._fields != RECORD_FIELDS:  # checked at import, as the state table is
    raise TypeError(
        f"RecordValues fields {RecordValues._fields} differ from RECORD_FIELDS {RECORD_FIELDS}."
    )
# tuple.__new__ takes the values as one sequence and skips namedtuple's per-field __new__.
record_values: Callable[[Sequence[Any]], RecordValues] = functools.partial(
    tuple.__new__, RecordValues
)


def _tuple_getter(indexes: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """itemgetter that always returns a tuple (itemgetter(i) alone returns the bare item)."""
    if len(indexes) > 1:
        return operator.itemgetter(*indexes)
    return lambda values: tuple(values[i] for i in indexes)


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
        # Multi-row statements: sqlite3 releases and retakes the GIL around every statement
        # step, so executemany of single rows hands the GIL to the event loop and back once per
        # row; 52 rows per step (19 columns, under SQLite's historic 999-parameter limit) cut
        # those handoffs 52-fold and the per-row cost by ~20%.
        self.rows_per_statement = max(
            1, min(_MAX_ROWS_PER_STATEMENT, _MAX_PARAMETERS // len(self.columns))
        )
        self._row_marks = f"({marks})"
        self._multi_sql: dict[int, str] = {}
        # Split a remainder into halving sizes (16, 8, 4, 2, 1): every statement is one of a
        # few, compiled once per connection, and warm_statements() can compile them before
        # the first commit (the writer child: SQLiteStore.tune_for_writer_child).
        self.halving = False
        # A table whose columns are all TransitionRecord fields reads records without a dict:
        # one attrgetter call returns the values in column order.
        self.record_getter: Callable[[TransitionRecord], tuple[Any, ...]] | None = None
        if set(self.columns) <= set(RECORD_FIELDS):
            self.record_getter = operator.attrgetter(*self.columns)
        # INSERT OR IGNORE skips a NOT NULL violation silently: required columns are checked here.
        self.required_getter = _tuple_getter(self.required_indexes)
        self.record_converters = tuple(
            (i, _RECORD_CONVERTERS[f.type])
            for i, f in enumerate(spec.fields)
            if f.type in _RECORD_CONVERTERS
        )
        self.column_converters = tuple(
            (i, COLUMN_CONVERTERS[f.type])
            for i, f in enumerate(spec.fields)
            if f.type in COLUMN_CONVERTERS
        )
        self.text_column_converters = tuple(
            (i, TEXT_COLUMN_CONVERTERS[f.type])
            for i, f in enumerate(spec.fields)
            if f.type in TEXT_COLUMN_CONVERTERS
        )
        self.mapping_getter = operator.itemgetter(*self.columns)  # a tuple: every table has > 1

    def multi_insert_sql(self, rows: int) -> str:
        """INSERT OR IGNORE of `rows` rows in one statement (cached per row count)."""
        sql = self._multi_sql.get(rows)
        if sql is None:
            head = self.insert_sql.partition(" VALUES ")[0]
            sql = f"{head} VALUES {', '.join([self._row_marks] * rows)}"
            if len(self._multi_sql) >= _SQL_CACHE_SIZE:
                self._multi_sql.clear()
            self._multi_sql[rows] = sql
        return sql

    def statement_sizes(self) -> list[int]:
        """The row counts statements() uses with halving on: rows_per_statement, halved to 1."""
        sizes = [self.rows_per_statement]
        while sizes[-1] > 1:
            sizes.append(sizes[-1] // 2)
        return sizes

    def statements(self, rows: Sequence[Sequence[Any]]) -> list[tuple[str, list[Any]]]:
        """The rows as (multi-row INSERT, flat parameters) pairs, in order."""
        per = self.rows_per_statement
        chain = itertools.chain.from_iterable
        if self.halving:
            out = []
            start, left = 0, len(rows)
            for size in self.statement_sizes():
                while left >= size:
                    chunk = rows[start : start + size]
                    out.append((self.multi_insert_sql(size), list(chain(chunk))))
                    start += size
                    left -= size
            return out
        return [
            (self.multi_insert_sql(len(chunk)), list(chain(chunk)))
            for chunk in (rows[i : i + per] for i in range(0, len(rows), per))
        ]

    def row_id(self, row: Mapping[str, Any], index: int) -> str:
        """The row's insert key, or a positional label when it has none."""
        value = row.get(self.spec.id_column)
        return str(value) if value is not None else f"<row {index} without {self.spec.id_column}>"

    def prepare(
        self, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Sequence[Any]], list[RowError]]:
        """Return value lists (column order) for good rows and a RowError for each bad one."""
        good: list[Sequence[Any]] = []
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

    def prepare_items(
        self, items: Sequence[TransitionRecord | RecordValues | Mapping[str, Any]]
    ) -> tuple[list[Sequence[Any]], list[RowError]]:
        """prepare() for records and rows alike; records skip the dict of to_row().

        Lone surrogates are left in place: the store repairs them only when SQLite refuses.
        """
        if items:
            columnwise = self._prepare_columns(items)
            if columnwise is not None:
                return columnwise, []
        return self._prepare_rows(items)

    def _prepare_rows(
        self, items: Sequence[TransitionRecord | RecordValues | Mapping[str, Any]]
    ) -> tuple[list[Sequence[Any]], list[RowError]]:
        """prepare_items one item at a time (any batch; each bad item rejected by id)."""
        good: list[Sequence[Any]] = []
        bad: list[RowError] = []
        getter, converters = self.record_getter, self.record_converters
        required = self.required_getter
        for index, item in enumerate(items):
            values: list[Any]
            try:
                if getter is not None and type(item) is RecordValues:
                    values = list(item)  # already in column order (see RecordValues)
                elif getter is not None and isinstance(item, TransitionRecord):
                    values = list(getter(item))
                else:  # a row, or a record for another table: the mapping route
                    row: Mapping[str, Any]
                    if isinstance(item, TransitionRecord):
                        row = item.to_row()
                    elif isinstance(item, RecordValues):
                        row = dict(zip(RECORD_FIELDS, item, strict=True))
                    else:
                        row = item
                    rows, errors = self.prepare([row])
                    good.extend(rows)
                    bad.extend(errors)
                    continue
                for i, convert in converters:
                    value = values[i]
                    if value is not None:
                        values[i] = convert(value)
                if None in required(values):
                    raise ValueError(f"required column(s) {self._nulls(values)} are null")
            except Exception as exc:  # a malformed value rejects this record only
                bad.append(RowError(self._record_id(item, index), f"{self.spec.name}: {exc}"))
                continue
            good.append(values)
        return good, bad

    def _prepare_columns(
        self, items: Sequence[TransitionRecord | RecordValues | Mapping[str, Any]]
    ) -> list[Sequence[Any]] | None:
        """The values of a batch, converted column by column; None: take the row route.

        The same parameters as the row route, for the usual batch: only records (or only
        RecordValues) with UTC times with a fraction, or only dicts with exactly the table's
        columns and canonical text (the rows derive_run_rows makes), no required value
        missing. The per-value loops run in C (map, zip), which takes ~2 us of Python off
        every row the writer process inserts. Anything unusual sends the whole batch down the
        row route, which rejects bad items one by one.
        """
        kinds = set(map(type, items))
        batch: Any = items  # one kind, checked below
        rows: Any
        converters = self.column_converters
        if kinds == {RecordValues} and self.record_getter is not None:
            rows = items
        elif kinds == {TransitionRecord} and self.record_getter is not None:
            rows = map(self.record_getter, batch)
        elif kinds == {dict}:
            if set(map(len, batch)) != {len(self.columns)}:  # a missing or unknown column
                return None
            rows = map(self.mapping_getter, batch)
            converters = self.text_column_converters
        else:
            return None
        try:
            columns: list[Any] = list(zip(*rows, strict=True))
            if len(columns) != len(self.columns):
                return None
            for i in self.required_indexes:
                if None in columns[i]:
                    return None
            for i, convert in converters:
                columns[i] = convert(columns[i])
        except Exception:  # _Unusual, or a converter refusing a value: the row route says which
            return None
        return list(zip(*columns, strict=True))

    def _nulls(self, values: Sequence[Any]) -> list[str]:
        """Names of the required columns that are None in `values`."""
        return [self.columns[i] for i in self.required_indexes if values[i] is None]

    def _record_id(self, item: object, index: int) -> str:
        """An item's insert key, or a positional label."""
        column = self.spec.id_column
        if type(item) is RecordValues:
            value = item[RECORD_FIELDS.index(column)]
        elif isinstance(item, Mapping):
            value = item.get(column)
        else:
            value = getattr(item, column, None)
        return str(value) if value is not None else f"<row {index} without {column}>"

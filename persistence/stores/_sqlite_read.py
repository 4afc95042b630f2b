"""SQLiteStore's reads: the catalog's named queries, engine SQL and row look-ups, bound only."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from persistence.queries._scope import ORG_PARAM, scope_sqlite
from persistence.queries.sqlite import SQLITE_SQL
from persistence.stores._select import where_clause as _where_clause
from persistence.stores._sqlite_rows import canonical_param
from persistence.stores._sqlite_write import store_error
from persistence.stores.base import StoreError

if TYPE_CHECKING:
    from persistence.schema import TableSpec


class SQLiteReads:
    """SQLiteStore's read methods (a mixin: the state is SQLiteStore's)."""

    _lock: threading.RLock
    _specs: dict[str, TableSpec]
    _connection: Callable[[], sqlite3.Connection]
    _ensure_schema: Callable[[], None]
    _spec: Callable[[str], TableSpec]

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run the named catalog (or dashboard) query's SQLite SQL with bound parameters only."""
        try:
            if name in SQLITE_SQL:
                sql = SQLITE_SQL[name]
            else:  # the dashboard's SQL is built on first use: a CLI run never reads it
                from persistence.queries.dashboard_sqlite import DASHBOARD_SQLITE_SQL

                sql = DASHBOARD_SQLITE_SQL[name]
        except KeyError:
            raise StoreError(
                f"unknown query {name!r}; expected one of {sorted(SQLITE_SQL)}", retryable=False
            ) from None
        if params.get(ORG_PARAM) is not None:
            sql = scope_sqlite(sql)
        return self._select(sql, params, f"query {name!r}")

    def run_sql(self, template: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one engine-owned SQL statement (tables as {table_name}) with bound parameters.

        For engine modules that keep their own SQL (persistence/watch); never for caller text.
        """
        sql = template.format_map({name: f'"{name}"' for name in self._specs})
        return self._select(sql, params, "engine query")

    def _select(self, sql: str, params: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
        """Run one read statement with bound, canonical parameters; rows as dicts."""
        bound = {key: canonical_param(value) for key, value in params.items()}
        with self._lock:
            conn = self._connection()
            self._ensure_schema()
            try:
                cursor = conn.execute(sql, bound)
                columns = [d[0] for d in cursor.description or ()]
                return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise store_error(what, exc) from exc

    def select_rows(
        self, table: str, where: Mapping[str, str], *, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Rows of a known table whose STRING columns equal `where`'s values (bound, read-only)."""
        spec = self._spec(table)
        clause = _where_clause(spec, where, lambda i: "?")
        sql = f'SELECT * FROM "{spec.name}" WHERE {clause} LIMIT {int(limit)}'
        with self._lock:
            conn = self._connection()
            self._ensure_schema()
            try:
                cursor = conn.execute(sql, tuple(where.values()))
                columns = [d[0] for d in cursor.description]
                return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise store_error(f"reading {spec.name}", exc) from exc

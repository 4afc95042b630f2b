"""SQLiteStore's schema and retention: tables, columns and indexes planned and applied; purge."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Sequence

from persistence.schema import (
    SQLITE_TYPES,
    TableSpec,
    sqlite_create_table,
    sqlite_indexes,
    sqlite_retired_indexes,
)
from persistence.stores._sqlite_write import store_error


class SQLiteSchema:
    """SQLiteStore's bootstrap and purge methods (a mixin: the state is SQLiteStore's)."""

    _lock: threading.RLock
    _specs: dict[str, TableSpec]
    _schema_ready: bool
    _connection: Callable[[], sqlite3.Connection]
    _ensure_schema: Callable[[], None]

    def purge_older_than(self, days: int, *, as_of: dt.date | None = None) -> dict[str, int]:
        """Delete rows whose partition date is before as_of - days (local partition expiration)."""
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ValueError(f"days must be an int >= 0 (got {days!r}).")
        cutoff = ((as_of or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=days)).isoformat()
        deleted: dict[str, int] = {}
        with self._lock:
            conn = self._connection()
            self._ensure_schema()
            try:
                conn.execute("BEGIN IMMEDIATE")
                for spec in self._specs.values():
                    if spec.expiration_days is None:  # never expires (org_api_keys)
                        continue
                    cursor = conn.execute(
                        f'DELETE FROM "{spec.name}" WHERE "{spec.partition_field}" < ?', (cutoff,)
                    )
                    deleted[spec.name] = cursor.rowcount
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise store_error("purge", exc) from exc
        return deleted

    def ensure_tables(self, specs: Sequence[TableSpec], *, dry_run: bool) -> list[str]:
        """Create missing tables, columns and indexes (none when dry_run); one line per action."""
        with self._lock:
            self._connection()
            actions, statements = self._plan(specs)
            if not dry_run:
                self._apply(statements)
                if {s.name for s in specs} >= set(self._specs):
                    self._schema_ready = True
        return actions

    def _plan(self, specs: Sequence[TableSpec]) -> tuple[list[str], list[str]]:
        """Compare the file with the specs: (actions, statements) still needed."""
        conn = self._connection()
        try:
            master = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        except sqlite3.Error as exc:
            raise store_error("reading the schema", exc) from exc
        tables = {name for kind, name in master if kind == "table"}
        indexes = {name for kind, name in master if kind == "index"}
        actions: list[str] = []
        statements: list[str] = []
        for spec in specs:
            if spec.name not in tables:
                retention = (
                    "kept for ever"
                    if spec.expiration_days is None
                    else f"retention {spec.expiration_days} days via purge"
                )
                actions.append(
                    f"create table {spec.name} ({len(spec.fields)} columns, primary key "
                    f"{spec.id_column}; {retention})"
                )
                statements.append(sqlite_create_table(spec))
            else:
                present = {row[1] for row in conn.execute(f'PRAGMA table_info("{spec.name}")')}
                for field in spec.fields:
                    if field.name not in present and not field.required:
                        actions.append(f"add column {field.name} to {spec.name}")
                        statements.append(
                            f'ALTER TABLE "{spec.name}" ADD COLUMN "{field.name}" '
                            f"{SQLITE_TYPES[field.type]}"
                        )
            for index_name, statement in sqlite_indexes(spec):
                if index_name not in indexes:
                    actions.append(f"create index {index_name} on {spec.name}")
                    statements.append(statement)
            for index_name, statement in sqlite_retired_indexes(spec):
                if index_name in indexes:  # merged into another index since: one less per insert
                    actions.append(f"drop index {index_name} on {spec.name}")
                    statements.append(statement)
        return actions, statements

    def _apply(self, statements: Sequence[str]) -> None:
        """Run DDL statements in one transaction (IF NOT EXISTS makes concurrent runs safe)."""
        if not statements:
            return
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements:
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise store_error("creating tables", exc) from exc

"""SQLiteStore's writes on its own connection: one transaction per call, bad rows rejected alone.

The logger's commits normally run in the writer child (persistence/_writer_process.py); these are
the child's own route (write_prepared), the in-process writer's, and the direct write_batch /
write_records calls. A row SQLite refuses is retried alone and rejected by id; anything else
(disk, lock, corruption) fails the whole call as a StoreError.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from persistence.stores._sqlite_rows import RowPreparer, encodable_values
from persistence.stores.base import RowError, StoreError, WriteResult

if TYPE_CHECKING:
    from persistence.schema import TableSpec
    from persistence.stores._sqlite_checkpoint import WalCheckpointer
    from statemachine.records import TransitionRecord

# Errors that one row's values can cause (constraint, unbindable type or text, huge int);
# anything else (disk, lock, corruption) fails the batch as a whole.
ROW_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    UnicodeEncodeError,
    OverflowError,
)


def store_error(action: str, exc: sqlite3.Error) -> StoreError:
    """Map a sqlite3 error to StoreError; a busy or locked file is worth retrying."""
    message = f"SQLite {action} failed: {type(exc).__name__}: {exc}"
    retryable = isinstance(exc, sqlite3.OperationalError)
    return StoreError(message, retryable=retryable)


def _execute(conn: sqlite3.Connection, preparer: RowPreparer, rows: list[Sequence[Any]]) -> None:
    """Insert rows with multi-row statements (see RowPreparer.rows_per_statement)."""
    for sql, params in preparer.statements(rows):
        conn.execute(sql, params)


class SQLiteWrites:
    """SQLiteStore's write methods (a mixin: the state is SQLiteStore's)."""

    # SQLiteStore's state and methods, which these use (see SQLiteStore.__init__).
    _lock: threading.RLock
    _specs: dict[str, TableSpec]
    _preparers: dict[str, RowPreparer]
    _checkpointer: WalCheckpointer | None
    _connection: Callable[[], sqlite3.Connection]
    _ensure_schema: Callable[[], None]
    _spec: Callable[[str], TableSpec]

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Insert rows in one transaction; bad rows are rejected by id while the rest land."""
        preparer = self._preparers[self._spec(table).name]
        good, rejected = preparer.prepare(rows)
        return self._insert(preparer, good, rejected)

    def write_records(
        self, table: str, items: Sequence[TransitionRecord | Mapping[str, Any]]
    ) -> WriteResult:
        """write_batch for TransitionRecords (and rows) without building a dict per record.

        The logger's fast path: the same rows, checks and guarantees as write_batch(table,
        [record.to_row() ...]).
        """
        preparer = self._preparers[self._spec(table).name]
        good, rejected = preparer.prepare_items(items)
        return self._insert(preparer, good, rejected)

    def _write_many_here(
        self, parts: Sequence[tuple[str, Sequence[TransitionRecord | Mapping[str, Any]]]]
    ) -> list[WriteResult]:
        """write_many on this process's connection.

        One statement (the usual small group) runs on its own, as its own transaction: every
        extra call into SQLite hands the GIL back and forth with a busy event loop, which is
        what delays a commit most under load. A row SQLite refuses sends the group down the
        per-table path, which rejects only that row.
        """
        prepared = []
        for table, items in parts:
            preparer = self._preparers[self._spec(table).name]
            good, rejected = preparer.prepare_items(items)
            prepared.append((preparer, good, rejected))
        return self._write_prepared(prepared)

    def write_prepared(self, parts: Sequence[tuple[str, list[Sequence[Any]]]]) -> list[WriteResult]:
        """write_many for rows already in insert form: each table's parameters in column order.

        The writer process's route (persistence/_wire_rows.py builds them from the frame): the
        values must be what RowPreparer.prepare_items would give (canonical text, JSON text,
        required columns present); SQLite still refuses what it refuses, row by row.
        """
        return self._write_prepared(
            [(self._preparers[self._spec(table).name], rows, []) for table, rows in parts]
        )

    def _write_prepared(
        self, prepared: list[tuple[RowPreparer, list[Sequence[Any]], list[RowError]]]
    ) -> list[WriteResult]:
        """The prepared rows of several tables in one transaction (see _write_many_here)."""
        statements = [s for preparer, good, _ in prepared for s in preparer.statements(good)]
        if statements:
            with self._lock:
                conn = self._connection()
                self._ensure_schema()
                try:
                    self._run_group(conn, statements)
                except ROW_ERRORS:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    return [self._insert(p, good, rejected) for p, good, rejected in prepared]
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    rows = sum(len(good) + len(rejected) for _, good, rejected in prepared)
                    raise store_error(f"writing {rows} rows", exc) from exc
                if self._checkpointer is not None:
                    self._checkpointer.after_commit(conn)
        return [WriteResult(len(good), tuple(rejected)) for _, good, rejected in prepared]

    @staticmethod
    def _run_group(conn: sqlite3.Connection, statements: list[tuple[str, list[Any]]]) -> None:
        """Run the statements as one transaction (a lone statement is one by itself)."""
        if len(statements) == 1:
            conn.execute(*statements[0])
            return
        conn.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")

    def _insert(
        self, preparer: RowPreparer, good: list[Sequence[Any]], rejected: list[RowError]
    ) -> WriteResult:
        """Insert prepared values in one transaction; a row SQLite refuses rejects itself only."""
        if not good:
            return WriteResult(written=0, rejected=tuple(rejected))
        with self._lock:
            conn = self._connection()
            self._ensure_schema()
            try:
                conn.execute("BEGIN IMMEDIATE")
                good = self._insert_all(conn, preparer, good, rejected)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                rows = len(good) + len(rejected)
                raise store_error(f"writing {rows} rows to {preparer.spec.name}", exc) from exc
            if self._checkpointer is not None:
                self._checkpointer.after_commit(conn)
        return WriteResult(written=len(good), rejected=tuple(rejected))

    @classmethod
    def _insert_all(
        cls,
        conn: sqlite3.Connection,
        preparer: RowPreparer,
        good: list[Sequence[Any]],
        rejected: list[RowError],
    ) -> list[Sequence[Any]]:
        """executemany inside the open transaction; on a row-level error, start it over.

        A lone surrogate (SQLite text is UTF-8) gets every row repaired and one more
        executemany; any other value or constraint the pre-checks missed (an unbindable type,
        a huge int) redoes the batch row by row to reject only the culprit. Returns the rows
        that landed.
        """
        try:
            _execute(conn, preparer, good)
            return good
        except ROW_ERRORS as exc:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            if not isinstance(exc, UnicodeEncodeError):
                return cls._insert_one_by_one(conn, preparer, good, rejected)
        good = [encodable_values(values) for values in good]
        try:
            _execute(conn, preparer, good)
            return good
        except ROW_ERRORS:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            return cls._insert_one_by_one(conn, preparer, good, rejected)

    @staticmethod
    def _insert_one_by_one(
        conn: sqlite3.Connection,
        preparer: RowPreparer,
        good: list[Sequence[Any]],
        rejected: list[RowError],
    ) -> list[Sequence[Any]]:
        """Insert each row alone (lone surrogates repaired), moving refused rows to `rejected`."""
        landed = []
        for values in good:
            try:
                try:
                    conn.execute(preparer.insert_sql, values)
                except UnicodeEncodeError:
                    values = encodable_values(values)
                    conn.execute(preparer.insert_sql, values)
            except ROW_ERRORS as exc:
                row_id = str(values[preparer.id_index])
                rejected.append(RowError(row_id, f"{preparer.spec.name}: {exc}"))
            else:
                landed.append(values)
        return landed

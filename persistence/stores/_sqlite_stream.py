"""The writer child's open transaction on a SQLiteStore: rows inserted as they arrive, one COMMIT.

persistence/_writer_stream.py inserts each streamed frame's prepared rows as soon as it is read
(the parent sends a group's rows while it is still gathering them) and commits once the group's
last frame has arrived. Only the writer child uses it; every other writer commits whole groups
(SQLiteStore.write_prepared / write_many).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from persistence.stores._sqlite_write import store_error

if TYPE_CHECKING:
    from persistence.stores.sqlite import SQLiteStore


class PreparedTransaction:
    """BEGIN on the first insert, INSERT OR IGNORE prepared rows, COMMIT or ROLLBACK."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.open = False  # a BEGIN IMMEDIATE is in progress

    def insert(self, parts: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Insert each table's prepared rows (RowPreparer's column order) into the transaction.

        Any error propagates as it is (sqlite3.Error, KeyError for an unknown table): the caller
        rolls back and takes the general route, which rejects bad rows one by one.
        """
        store = self.store
        with store._lock:
            conn = store._connection()
            if not self.open:
                store._ensure_schema()
                conn.execute("BEGIN IMMEDIATE")
                self.open = True
            for table, rows in parts:
                if rows:
                    for sql, params in store._preparers[store._spec(table).name].statements(rows):
                        conn.execute(sql, params)

    def commit(self) -> None:
        """COMMIT what was inserted (nothing open: nothing to do); a failure rolls back, raises."""
        if not self.open:
            return
        store = self.store
        self.open = False
        with store._lock:
            conn = store._connection()
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise store_error("committing streamed rows", exc) from exc
            if store._checkpointer is not None:
                store._checkpointer.after_commit(conn)

    def rollback(self) -> None:
        """Drop what was inserted since the BEGIN (safe to call with nothing open)."""
        self.open = False
        store = self.store
        with store._lock:
            conn = store._conn
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")

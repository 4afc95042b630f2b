"""The outbox file: a SQLite table of rows waiting for the remote store, and a dead-letter table."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from persistence._fork_guard import close_when_collected, register_sqlite_user
from persistence.stores.base import ID_COLUMNS, StoreError, WriteResult

_SURROGATE = re.compile("[\ud800-\udfff]")

SYNCHRONOUS_MODES = ("FULL", "NORMAL")
_ENQUEUE_ROWS_PER_STATEMENT = 200  # 800 parameters: under SQLite's historic limit of 999
ERROR_LIMIT = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    row_id TEXT,
    row_json TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    enqueued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY,
    table_name TEXT NOT NULL,
    row_id TEXT,
    row_json TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    enqueued_at REAL NOT NULL,
    failed_at REAL NOT NULL
);
"""


@attrs.frozen
class OutboxRow:
    """One row waiting in the outbox, in the order it was written."""

    seq: int
    table_name: str
    row_id: str | None
    row_json: str
    attempts: int

    def row(self) -> dict[str, Any]:
        """Decode the stored row back into the dict the remote store expects."""
        value: dict[str, Any] = json.loads(self.row_json)
        return value


def _json_default(value: object) -> str:
    """Render values JSON cannot encode (dates, decimals, bytes) as readable strings."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset)):
        return json.dumps(sorted(map(repr, value)))
    try:
        return str(value)
    except Exception:  # a hostile __str__ must not lose the whole batch
        return f"<unprintable {type(value).__qualname__}>"


def _encodable(text: str) -> str:
    """Replace lone surrogates (SQLite cannot store them as UTF-8) with U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def encode_row(row: Mapping[str, Any]) -> str:
    """Serialise one row to compact JSON, never raising on odd values."""
    try:
        text = json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError, TypeError):
        safe = {str(k): _json_default(v) for k, v in row.items()}
        text = json.dumps(safe, ensure_ascii=False, separators=(",", ":"))
    return _encodable(text)


def row_id_of(table: str, row: Mapping[str, Any]) -> str | None:
    """Return the insert key of a row, or None when the table has no known id column."""
    value = row.get(ID_COLUMNS.get(table, ""))
    return None if value is None or value == "" else _encodable(str(value))


def _unwritable(path: str, exc: BaseException) -> StoreError:
    return StoreError(
        f"outbox file {path!r} is not writable ({exc}); audit rows are not being recorded "
        "- fix the path or free disk space, rows written from now on will be kept",
        retryable=False,
    )


class OutboxDB:
    """Thread-safe access to one outbox file; every method is one short transaction."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        max_bytes: int | None = None,
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"'synchronous' must be one of {SYNCHRONOUS_MODES} (got {synchronous!r})."
            )
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"'max_bytes' must be > 0 or None (got {max_bytes!r}).")
        self.path = os.fspath(path)
        self._synchronous = synchronous
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        register_sqlite_user(self)  # a writer fork waits until no call here is in SQLite
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open the file (once), raising StoreError(retryable=False) when that is impossible."""
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise StoreError(f"outbox file {self.path!r} is closed", retryable=False)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _unwritable(self.path, exc) from exc
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL fsyncs the WAL on every commit: a row counted as written survives power loss.
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.executescript(_SCHEMA)
            if self._max_bytes is not None:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                pages = max(1, self._max_bytes // page_size)
                conn.execute(f"PRAGMA max_page_count={int(pages)}")
        except sqlite3.Error as exc:
            conn.close()
            raise _unwritable(self.path, exc) from exc
        self._conn = conn
        close_when_collected(self, conn)  # dropped unclosed: see _fork_guard._FORK_GUARD
        return conn

    def open(self) -> None:
        """Open the file now so a bad path is reported early (raises StoreError)."""
        with self._lock:
            self._connect()

    def close(self) -> None:
        """Close the file; safe to call twice."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- writing ----------------------------------------------------------------------------

    def enqueue(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append rows in one transaction; returns only once they are on disk."""
        self.enqueue_many([(table, rows)])

    def enqueue_many(self, parts: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> None:
        """Append the rows of several tables in one transaction (one fsync for them all)."""
        now = time.time()
        data = [
            (table, row_id_of(table, row), encode_row(row), now)
            for table, rows in parts
            for row in rows
        ]
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                # Multi-row INSERTs, not executemany: every statement step hands the GIL to a
                # busy event loop and back, which made a commit trail its rows by 100+ ms.
                for start in range(0, len(data), _ENQUEUE_ROWS_PER_STATEMENT):
                    chunk = data[start : start + _ENQUEUE_ROWS_PER_STATEMENT]
                    marks = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                    conn.execute(
                        "INSERT INTO outbox (table_name, row_id, row_json, enqueued_at)"
                        f" VALUES {marks}",
                        [value for row in chunk for value in row],
                    )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _unwritable(self.path, exc) from exc

    def oldest(self, limit: int) -> list[OutboxRow]:
        """Return up to `limit` rows of the table whose oldest row is oldest, in write order."""
        with self._lock:
            conn = self._connect()
            head = conn.execute("SELECT table_name FROM outbox ORDER BY seq LIMIT 1").fetchone()
            if head is None:
                return []
            found = conn.execute(
                "SELECT seq, table_name, row_id, row_json, attempts FROM outbox"
                " WHERE table_name = ? ORDER BY seq LIMIT ?",
                (head[0], limit),
            ).fetchall()
        return [OutboxRow(*values) for values in found]

    def delete(self, seqs: Iterable[int]) -> None:
        """Remove rows the remote accepted."""
        # No fsync for deletes: a delete lost to power failure only re-ships rows, which the
        # remote de-duplicates; the next durable commit syncs the WAL anyway.
        # One statement per chunk, not executemany: each statement hands the GIL to a busy
        # event loop and back while this holds the file, and the logger's commits wait on it.
        ordered = list(seqs)
        chunks = [
            ordered[i : i + _ENQUEUE_ROWS_PER_STATEMENT]
            for i in range(0, len(ordered), _ENQUEUE_ROWS_PER_STATEMENT)
        ]
        for chunk in chunks:
            marks = ", ".join("?" * len(chunk))
            self._many(f"DELETE FROM outbox WHERE seq IN ({marks})", [tuple(chunk)], durable=False)

    def record_failure(self, seqs: Iterable[int], error: str, *, count_attempt: bool) -> None:
        """Remember the error on each row; count an attempt only when the remote refused it.

        Outages (retryable errors) are not counted, so a long outage never dead-letters a row.
        """
        step = 1 if count_attempt else 0
        self._many(
            "UPDATE outbox SET attempts = attempts + ?, last_error = ? WHERE seq = ?",
            [(step, error[:ERROR_LIMIT], seq) for seq in seqs],
        )

    def dead_letter(self, failures: Mapping[int, str]) -> None:
        """Move rows the remote rejected for good to the dead-letter table, with the error."""
        now = time.time()
        params = [(error[:ERROR_LIMIT], now, seq) for seq, error in failures.items()]
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO dead_letter (seq, table_name, row_id, row_json,"
                    " attempts, error, enqueued_at, failed_at)"
                    " SELECT seq, table_name, row_id, row_json, attempts + 1, ?, enqueued_at, ?"
                    " FROM outbox WHERE seq = ?",
                    params,
                )
                conn.executemany("DELETE FROM outbox WHERE seq = ?", [(p[2],) for p in params])
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def requeue_dead_letters(self) -> int:
        """Move every dead letter back to the outbox (after the cause was fixed); return count."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                moved = conn.execute(
                    "INSERT INTO outbox (table_name, row_id, row_json, attempts, last_error,"
                    " enqueued_at) SELECT table_name, row_id, row_json, 0, error, enqueued_at"
                    " FROM dead_letter ORDER BY seq"
                ).rowcount
                conn.execute("DELETE FROM dead_letter")
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                raise
        return int(moved)

    def _many(self, sql: str, params: list[tuple[Any, ...]], *, durable: bool = True) -> None:
        if not params:
            return
        with self._lock:
            conn = self._connect()
            relax = not durable and self._synchronous != "NORMAL"
            if relax:
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, params)
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if relax:
                    conn.execute(f"PRAGMA synchronous={self._synchronous}")

    # -- reading ----------------------------------------------------------------------------

    def pending_count(self) -> int:
        """Return how many rows wait in the outbox."""
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def snapshot(self) -> dict[str, Any]:
        """Return pending rows per table, dead letters per table, the oldest age and last error."""
        with self._lock:
            conn = self._connect()
            pending = dict(
                conn.execute("SELECT table_name, COUNT(*) FROM outbox GROUP BY table_name")
            )
            dead = dict(
                conn.execute("SELECT table_name, COUNT(*) FROM dead_letter GROUP BY table_name")
            )
            oldest = conn.execute("SELECT MIN(enqueued_at) FROM outbox").fetchone()[0]
            last = conn.execute(
                "SELECT last_error FROM outbox WHERE last_error IS NOT NULL"
                " ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return {
            "pending": {str(k): int(v) for k, v in pending.items()},
            "pending_total": int(sum(pending.values())),
            "dead_letters": {str(k): int(v) for k, v in dead.items()},
            "dead_letters_total": int(sum(dead.values())),
            "oldest_pending_age_seconds": None
            if oldest is None
            else max(0.0, time.time() - oldest),
            "last_row_error": None if last is None else str(last[0]),
        }

    def dead_letter_rows(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the oldest dead letters (table, row id, error) for inspection."""
        with self._lock:
            found = (
                self._connect()
                .execute(
                    "SELECT seq, table_name, row_id, attempts, error, failed_at FROM dead_letter"
                    " ORDER BY seq LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        keys = ("seq", "table_name", "row_id", "attempts", "error", "failed_at")
        return [dict(zip(keys, values, strict=True)) for values in found]


class OutboxFile:
    """The writer process's side of an outbox: commits groups of rows to the file."""

    def __init__(self, path: str, synchronous: str, max_bytes: int | None) -> None:
        self._db = OutboxDB(path, synchronous=synchronous, max_bytes=max_bytes)

    def prepare_writes(self) -> None:
        """Open the file before the first group arrives (raises StoreError)."""
        self._db.open()

    def write_many(
        self, parts: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> list[WriteResult]:
        """Enqueue every table's rows in one commit."""
        if any(rows for _, rows in parts):
            self._db.enqueue_many(parts)
        return [WriteResult(written=len(rows)) for _, rows in parts]

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """One table's rows (the Store protocol)."""
        return self.write_many([(table, rows)])[0]

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Not used in the writer process."""
        raise StoreError("the outbox writer process runs no queries", retryable=False)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

"""SQLiteStore: the embedded default store (a file, WAL, INSERT OR IGNORE on each table's id)."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from persistence._fork_guard import close_when_collected, register_sqlite_user
from persistence._writer_process import WriterProcess, open_writer
from persistence.schema import TableSpec, load_table_specs
from persistence.stores._sqlite_checkpoint import WalCheckpointer
from persistence.stores._sqlite_read import SQLiteReads
from persistence.stores._sqlite_rows import RowPreparer
from persistence.stores._sqlite_schema import SQLiteSchema
from persistence.stores._sqlite_write import SQLiteWrites, store_error
from persistence.stores.base import StoreError, WriteResult
from statemachine.records import TransitionRecord

if TYPE_CHECKING:
    import asyncio

    from persistence.stores._sqlite_stream import PreparedTransaction

DEFAULT_PATH = "pipestate.db"
# Pages of a file this store creates (SQLite's default is 4,096; a file keeps the size it was
# made with). The random-key indexes (id, run_time, window) make every commit rewrite most of
# their leaf pages into the WAL: 8 KiB pages halve the frames (syscalls, checksums, the
# checkpoint's copies) and the B-tree depth. The writer child's CPU per row in
# benchmarks/persistence.py's emit -> SQLite fell ~10 % (docs: issue 12, seventh session).
PAGE_SIZE_BYTES = 8_192
WAL_AUTOCHECKPOINT_BYTES = 16_000 * 4_096  # at most ~64 MiB of WAL between checkpoints


def wal_autocheckpoint_pages(page_size: int) -> int:
    """The wal_autocheckpoint (in pages) that keeps ~64 MiB of WAL between checkpoints."""
    return max(1, WAL_AUTOCHECKPOINT_BYTES // page_size)


# Rows per INSERT in the writer process. Every distinct row count is another statement for
# SQLite to compile (~8 us per row of it, as much as inserting the row), and group sizes vary:
# with up to 500 rows per statement a stream of 250-750-row groups compiled a new one for most
# commits (9.5 us of CPU per row against 8.0 with 16-32) and a fresh child compiles every one
# of a chain's (~1 ms of a 100-step chain's ~3 ms commit). 16 bounds both (at most 16 sizes
# per table stay in sqlite3's 128-statement cache). The child is the only thread of its
# process, so the extra statements hand the GIL to no one (the in-process writer keeps 500).
CHILD_ROWS_PER_STATEMENT = 16


def _literal_path(path: str) -> str:
    """The path as a plain file name: SQLite built with SQLITE_USE_URI reads "file:..." as a URI
    (file:x?mode=memory would be an in-memory audit log), even with sqlite3's uri=False."""
    return "./" + path if path.startswith("file:") else path


class SQLiteStore(SQLiteWrites, SQLiteReads, SQLiteSchema):
    """A Store (and Bootstrappable) on one SQLite file; safe across threads and processes.

    One connection guarded by a lock serves every thread (SQLite serialises writers anyway);
    other processes may write the same file: WAL plus busy_timeout makes them take turns.
    Tables are created on first use, so a fresh file needs no set-up.
    """

    dialect = "sqlite"
    # Hints the logger reads (see persistence._batcher): SQLite runs one writer at a time and
    # a transaction's fixed cost (WAL frames of every touched index page) dwarfs its per-row
    # cost, so one flush in flight per table, taking a whole backlog in one transaction, beats
    # several small ones contending for the lock (benchmarks/persistence.py: ~2x).
    max_batch_rows = 5_000
    max_concurrent_writes = 1
    # Commit whatever is queued as soon as the previous write is done (see Batcher).
    group_commit = True

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        busy_timeout_seconds: float = 30.0,
        synchronous: str = "NORMAL",
        writer_process: bool | None = None,
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(
                f"synchronous must be OFF, NORMAL, FULL or EXTRA (got {synchronous!r})."
            )
        self.path = os.fspath(path)
        if not isinstance(self.path, str) or "\x00" in self.path:
            raise ValueError(
                f"SQLite path must be a str path without NUL bytes (got {self.path!r})."
            )
        self._busy_timeout_ms = int(busy_timeout_seconds * 1000)
        self._synchronous = synchronous
        self._lock = threading.RLock()
        register_sqlite_user(self)  # a writer fork waits until no call here is in SQLite
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._schema_ready = False
        self._specs = {spec.name: spec for spec in load_table_specs()}
        self._preparers = {name: RowPreparer(spec) for name, spec in self._specs.items()}
        self._checkpoint_in_thread: int | None = None  # tune_for_writer_child: 0 = page size's
        self._checkpointer: WalCheckpointer | None = None
        # The logger's commits (write_many) run in a forked writer process by default; see
        # persistence/_writer_process.py. Every other call stays on this connection.
        self._writer: WriterProcess | None = open_writer(
            self.path,
            functools.partial(
                SQLiteStore,
                self.path,
                busy_timeout_seconds=busy_timeout_seconds,
                synchronous=synchronous,
                writer_process=False,
            ),
            writer_process,
            before_fork=self._release_connection,
        )

    def _release_connection(self) -> None:
        """Close this process's connection before a writer fork; the next call reopens it.

        A fork copies SQLite's per-file state of every file open in this process, and a
        parked writer child may later open the same file again: with that stale copy it
        would share locks and wal-index with a connection that no longer exists. A child
        never opens a file that was open at its fork (persistence/_writer_pool.py), so closing
        ours first is what lets the next logger of this file reuse it.
        """
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def tune_for_writer_child(self, *, checkpoint_frames: int | None = None) -> None:
        """Shorter multi-row statements and checkpoints in a thread, for the writer process's store.

        checkpoint_frames (tests): the WAL frames that wake the checkpointer, instead of the
        page size's wal_autocheckpoint_pages (persistence/stores/_sqlite_checkpoint.py).
        """
        for preparer in self._preparers.values():
            preparer.rows_per_statement = min(preparer.rows_per_statement, CHILD_ROWS_PER_STATEMENT)
            preparer.halving = True
        with self._lock:
            self._checkpoint_in_thread = checkpoint_frames or 0

    def warm_statements(self, tables: Sequence[str]) -> None:
        """Compile the INSERTs the writer child will run on `tables` (halving sizes) now.

        The child calls it once the file is open, while the parent's run is only starting:
        compiling a 16-row INSERT into a table with 8 indexes costs about as much as running
        it, and a new connection (each store a parked child serves) compiled them inside its
        first commits, ~1 ms of a 100-step chain's ~3 ms (issue 12, eighth session). sqlite3
        caches a statement before binding its parameters, so executing it with none compiles
        and caches it without running it (the binding's ProgrammingError is expected).
        """
        with self._lock:
            conn = self._connection()
            for table in tables:
                preparer = self._preparers[self._spec(table).name]
                for size in preparer.statement_sizes() if preparer.halving else ():
                    with contextlib.suppress(sqlite3.ProgrammingError):
                        conn.execute(preparer.multi_insert_sql(size), ())

    def prepared_transaction(self) -> PreparedTransaction:
        """The writer child's open transaction for streamed rows (stores/_sqlite_stream.py)."""
        from persistence.stores._sqlite_stream import PreparedTransaction

        return PreparedTransaction(self)

    def warm_wal(self) -> None:
        """Start the write-ahead log now: the first commit into a new WAL costs ~0.5 ms more.

        The writer child calls it once the file is open (as warm_statements). A new -wal gets
        its header, and the -shm its index, on the first write transaction: on the 100-step
        chain that was the first group's commit (~0.6-0.8 ms against ~0.15 ms for the next
        ones, fresh file each run; issue 12, ninth session). Rewriting user_version with its
        own value is a write that changes nothing readers see.
        """
        with self._lock:
            conn = self._connection()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute(f"PRAGMA user_version = {int(version)}")

    @property
    def derives_rows(self) -> bool:
        """True when write_many(parts, derive=True) derives run/step rows in the writer process."""
        return self._writer is not None

    @property
    def pipelined(self) -> bool:
        """True when submit_many() can take groups before earlier ones are committed."""
        return self._writer is not None

    def submit_many(
        self,
        parts: Sequence[tuple[str, Sequence[TransitionRecord | Mapping[str, Any]]]],
        *,
        derive: bool,
    ) -> Future[tuple[list[WriteResult], list[tuple[str, WriteResult]], int]]:
        """Send a group to the writer process now; the future resolves once it is committed.

        Returns (results, derived (table, result) pairs, derive failures), as
        persistence._group_write.write_group_derived. Writer-process mode only.
        """
        if self._writer is None:
            raise StoreError("submit_many needs the writer process", retryable=False)
        if self._closed:
            raise StoreError(f"SQLiteStore({self.path!r}) is closed", retryable=False)
        for table, _ in parts:
            self._spec(table)
        return self._writer.submit(parts, derive)

    def submit_nowait(
        self,
        parts: Sequence[tuple[str, Sequence[TransitionRecord | Mapping[str, Any]]]],
        *,
        derive: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.Future[tuple[list[WriteResult], list[tuple[str, WriteResult]], int]] | None:
        """submit_many() from the event loop without blocking it; None: use submit_many."""
        if self._writer is None or self._closed:
            return None  # submit_many (from a thread) raises the error
        if any(table not in self._specs for table, _ in parts):
            return None
        return self._writer.submit_nowait(parts, derive, loop)

    def stream_link(self) -> Any:
        """The writer child rows can be sent ahead to now (_writer_process), or None."""
        if self._writer is None or self._closed:
            return None
        return self._writer.stream_link()

    def stream_nowait(self, link: Any, frame: bytes, loop: asyncio.AbstractEventLoop) -> bool:
        """Send a data frame to that child (see stream_link); False if it is not the child now."""
        if self._writer is None or self._closed:
            return False
        return self._writer.stream_nowait(link, frame, loop)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id while it runs (None in thread mode or before the first write)."""
        return None if self._writer is None else self._writer.pid

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connection ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """Open the connection on first use; the caller holds the lock."""
        if self._closed:
            raise StoreError(f"SQLiteStore({self.path!r}) is closed", retryable=False)
        if self._conn is None:
            try:
                conn = sqlite3.connect(
                    _literal_path(self.path),
                    timeout=self._busy_timeout_ms / 1000,
                    isolation_level=None,  # explicit BEGIN/COMMIT: one transaction per batch
                    check_same_thread=False,  # guarded by self._lock
                )
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                # Only an empty file takes it (before WAL mode); an existing one keeps its own.
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                conn.execute("PRAGMA temp_store = MEMORY")
                conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: the 1M-row queries fit
                # Fewer, larger checkpoints: each one fsyncs and rewrites every index page the
                # WAL touched; 4,000 pages checkpointed ~3x as often and cost ~25% throughput.
                (page_size,) = conn.execute("PRAGMA page_size").fetchone()
                pages = wal_autocheckpoint_pages(page_size)
                conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
                if self._checkpoint_in_thread is not None:
                    # The writer child: checkpoints off the commit path, same threshold.
                    conn.execute("PRAGMA wal_autocheckpoint = 0")
                    self._checkpointer = WalCheckpointer(
                        _literal_path(self.path),
                        self._checkpoint_in_thread or pages,
                        self._busy_timeout_ms / 1000,
                    )
            except sqlite3.Error as exc:
                raise store_error(f"opening {self.path!r}", exc) from exc
            self._conn = conn
            close_when_collected(
                self, conn
            )  # a store dropped unclosed: see _fork_guard._FORK_GUARD
        return self._conn

    def _ensure_schema(self) -> None:
        """Create missing tables and indexes once per store object; the caller holds the lock."""
        if not self._schema_ready:
            self._apply(self._plan(tuple(self._specs.values()))[1])
            self._schema_ready = True

    def _spec(self, table: str) -> TableSpec:
        """The spec of a known table, or a non-retryable StoreError naming the known ones."""
        try:
            return self._specs[table]
        except KeyError:
            raise StoreError(
                f"unknown table {table!r}; expected one of {sorted(self._specs)}",
                retryable=False,
            ) from None

    def prepare_writes(self) -> None:
        """Open the file and create missing tables now (StoreError if it cannot be written).

        The logger calls it from start(), so the first rows of a run never wait behind the
        connection set-up and the schema's DDL while the run is already emitting.
        """
        with self._lock:
            self._connection()
            try:
                self._ensure_schema()
            except sqlite3.Error as exc:
                raise store_error("creating the tables", exc) from exc
        if self._writer is not None:
            self._writer.start()

    # -- Store protocol -----------------------------------------------------------------------

    def write_many(
        self,
        parts: Sequence[tuple[str, Sequence[TransitionRecord | Mapping[str, Any]]]],
        *,
        derive: bool = False,
    ) -> Any:
        """write_records for several tables in one transaction (the logger's group commit).

        With a writer process the transaction runs there; derive=True (writer process only)
        also writes the run/step rows the records imply and returns (results, derived,
        failures) as persistence._group_write.write_group_derived does.
        """
        if self._writer is not None:
            if self._closed:
                raise StoreError(f"SQLiteStore({self.path!r}) is closed", retryable=False)
            for table, _ in parts:
                self._spec(table)
            results, derived, failures = self._writer.write(parts, derive)
            return (results, derived, failures) if derive else results
        return self._write_many_here(parts)

    def close(self) -> None:
        """Close the connection (and end the writer process, after its commits); idempotent."""
        if self._writer is not None:
            self._writer.close()
        with self._lock:
            self._closed = True
            if self._checkpointer is not None:
                # First: the writer's connection, closed last, checkpoints the WAL as before.
                self._checkpointer.close()
                self._checkpointer = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

"""A durable outbox in front of a remote store: rows hit a local SQLite file first, then ship.

OutboxStore implements the Store protocol, so the MetadataLogger needs no change:

    store = OutboxStore(BigQueryStore(...), "pipestate-outbox.db")
    logger = MetadataLogger(store)

write_batch() returns once the rows are committed to the outbox file (WAL, fsync on commit). A
background uploader thread (persistence/_outbox_upload.py) ships the oldest rows to the remote
in batches (the remote de-duplicates on each table's id column, BigQuery's insertId), and
deletes them only after the remote accepted them. Rows the remote rejects for good go to a
dead-letter table, counted and kept. Retryable remote failures back off and retry forever;
writers never wait for the remote.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from classifier import RetryPolicy
from persistence._outbox_db import OutboxDB, OutboxFile
from persistence._outbox_upload import OutboxUploads
from persistence._writer_process import WriterProcess, open_writer
from persistence.stores.base import Bootstrappable, Store, StoreError, WriteResult
from statemachine._log import lazy_logger

if TYPE_CHECKING:
    import asyncio

    from persistence.schema import TableSpec

_log = lazy_logger("persistence.outbox")

DEFAULT_PATH = "pipestate-outbox.db"
OUTBOX_ENV = "PIPESTATE_OUTBOX"
# Short first retry (a blip), capped so a recovered remote is noticed within 15 s.
DEFAULT_RETRY_POLICY = RetryPolicy(
    max_retries=1_000_000, base_delay_seconds=0.5, multiplier=2.0, max_delay_seconds=15.0
)


class OutboxStore(OutboxUploads):
    """A Store that makes rows durable locally, then ships them to `remote` in the background."""

    # Hints the logger reads (persistence._batcher): the local file is written by group commit
    # (whatever is queued, as soon as the previous commit is done, one commit at a time), so a
    # row reaches the disk within about a commit's time; the uploader still ships in batches.
    group_commit = True
    max_concurrent_writes = 1

    def __init__(
        self,
        remote: Store,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        batch_size: int = 500,
        upload_interval_seconds: float = 1.0,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        max_attempts: int = 5,
        synchronous: str = "FULL",
        max_bytes: int | None = None,
        query_drain_timeout: float = 5.0,
        close_timeout: float = 10.0,
        writer_process: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"'batch_size' must be >= 1 (got {batch_size!r}).")
        if not upload_interval_seconds > 0:
            raise ValueError(
                f"'upload_interval_seconds' must be > 0 (got {upload_interval_seconds!r})."
            )
        if max_attempts < 1:
            raise ValueError(f"'max_attempts' must be >= 1 (got {max_attempts!r}).")
        self.remote = remote
        self.path = os.fspath(path)
        self.batch_size = batch_size
        self.upload_interval_seconds = upload_interval_seconds
        self.retry_policy = retry_policy
        self.max_attempts = max_attempts
        self.query_drain_timeout = query_drain_timeout
        self.close_timeout = close_timeout
        self._db = OutboxDB(self.path, synchronous=synchronous, max_bytes=max_bytes)
        # The logger's commits run in a writer process (persistence/_writer_process.py): rows
        # leave this process within ~1 ms and are committed even if it is killed meanwhile.
        self._writer: WriterProcess | None = open_writer(
            self.path,
            functools.partial(OutboxFile, self.path, synchronous, max_bytes),
            writer_process,
        )
        self._ship_lock = threading.Lock()  # one shipper at a time: uploader, drain or close
        self._state_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._unshipped_writes = 0
        self._consecutive_failures = 0
        self._retry_at = 0.0
        self._counters = {
            "rows_enqueued": 0,
            "rows_shipped": 0,
            "rows_dead_lettered": 0,
            "enqueue_errors": 0,
            "remote_failures": 0,
        }
        self._last_error: str | None = None
        self._last_shipped_at: float | None = None

    # -- Store protocol ---------------------------------------------------------------------

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Commit rows to the outbox file; raise StoreError(retryable=False) if it is unwritable."""
        return self.write_many([(table, rows)])[0]

    def write_many(
        self, parts: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> list[WriteResult]:
        """write_batch for several tables in one outbox commit (the logger's group commit)."""
        if self._closed:
            raise StoreError(
                f"outbox {self.path!r} is closed; rows were not recorded", retryable=False
            )
        total = sum(len(rows) for _, rows in parts)
        if total:
            try:
                self._db.enqueue_many(parts)
            except StoreError as exc:
                self._count("enqueue_errors")
                self._note_error(str(exc))
                raise
            self._count("rows_enqueued", total)
            self._note_enqueued(total)
        return [WriteResult(written=len(rows)) for _, rows in parts]

    @property
    def pipelined(self) -> bool:
        """True when submit_many() sends groups to the writer process."""
        return self._writer is not None

    def submit_many(
        self, parts: Sequence[tuple[str, Sequence[Any]]], *, derive: bool
    ) -> Future[tuple[list[WriteResult], list[tuple[str, WriteResult]], int]]:
        """Send a group to the writer process; the future resolves once it is in the file.

        Items may be TransitionRecords (converted to rows in the child); derive=True also
        enqueues the run/step rows they imply, in the same commit.
        """
        if self._writer is None:
            raise StoreError("submit_many needs the writer process", retryable=False)
        if self._closed:
            raise StoreError(
                f"outbox {self.path!r} is closed; rows were not recorded", retryable=False
            )
        future = self._writer.submit(parts, derive)
        future.add_done_callback(self._enqueued)
        return future

    def submit_nowait(
        self,
        parts: Sequence[tuple[str, Sequence[Any]]],
        *,
        derive: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.Future[tuple[list[WriteResult], list[tuple[str, WriteResult]], int]] | None:
        """submit_many() from the event loop without blocking it; None: use submit_many."""
        if self._writer is None or self._closed:
            return None  # submit_many (from a thread) raises the error
        future = self._writer.submit_nowait(parts, derive, loop)
        if future is not None:
            future.add_done_callback(self._enqueued)
        return future

    def _enqueued(self, future: Future[Any] | asyncio.Future[Any]) -> None:
        """Count a group the writer process committed (or failed) and wake the uploader."""
        if future.cancelled():  # stop() gave up waiting; the child may still commit it
            return
        error = future.exception()
        if error is not None:
            self._count("enqueue_errors")
            self._note_error(str(error))
            return
        results, derived, _ = future.result()
        total = sum(r.written for r in results) + sum(r.written for _, r in derived)
        if not total:
            return
        self._count("rows_enqueued", total)
        if not self._closed:
            self._note_enqueued(total)

    def _note_enqueued(self, total: int) -> None:
        """Start the uploader if needed and wake it once a batch of rows waits to ship."""
        self._ensure_uploader()
        with self._state_lock:
            self._unshipped_writes += total
            full = self._unshipped_writes >= self.batch_size
        if full:
            self._wake.set()

    def prepare_writes(self) -> None:
        """Open the outbox file and start the writer process before the first row (logger)."""
        self._db.open()
        if self._writer is not None:
            self._writer.start()

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run the query on the remote, after shipping what is pending (bounded wait)."""
        if self.query_drain_timeout > 0:
            with contextlib.suppress(StoreError):
                self.drain(self.query_drain_timeout)
        return self.remote.query(name, params)

    def run_sql(self, template: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run an engine-owned statement on the remote, after shipping what is pending."""
        if self.query_drain_timeout > 0:
            with contextlib.suppress(StoreError):
                self.drain(self.query_drain_timeout)
        run_sql: Any = getattr(self.remote, "run_sql", None)
        if run_sql is None:
            raise StoreError(f"{self.remote!r} cannot run engine SQL", retryable=False)
        rows: list[dict[str, Any]] = run_sql(template, params)
        return rows

    def select_rows(
        self, table: str, where: Mapping[str, str], *, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Read rows from the remote (the service's key table is written there directly)."""
        select = getattr(self.remote, "select_rows", None)
        if select is None:
            raise StoreError(f"{self.remote!r} cannot select rows", retryable=False)
        rows: list[dict[str, Any]] = select(table, where, limit=limit)
        return rows

    def close(self, timeout: float | None = None) -> None:
        """Stop the uploader, ship what fits in `timeout`, keep the rest on disk; idempotent."""
        if self._closed:
            return
        if self._writer is not None:  # what the writer process has read is committed first
            self._writer.close()
        self._closed = True
        budget = self.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(0.0, budget)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        try:
            left = self._drain_until(deadline, uploader=False)
            if left:
                _log.warning("outbox_closed_with_pending", path=self.path, pending=left)
        except StoreError as exc:
            _log.warning("outbox_close_drain_failed", path=self.path, error=str(exc))
        finally:
            self._db.close()
            self.remote.close()

    # -- delegated to the remote ------------------------------------------------------------

    @property
    def dialect(self) -> str | None:
        """The remote's SQL dialect (queries and bootstrap run there, never on the outbox)."""
        value = getattr(self.remote, "dialect", None)
        return None if value is None else str(value)

    def ensure_tables(self, specs: Sequence[TableSpec], *, dry_run: bool) -> list[str]:
        """Bootstrap the remote's tables (the outbox file needs none)."""
        if not isinstance(self.remote, Bootstrappable):
            raise TypeError(f"{self.remote!r} cannot create tables (no ensure_tables method).")
        return self.remote.ensure_tables(specs, dry_run=dry_run)

    def __repr__(self) -> str:
        return f"OutboxStore({self.remote!r}, {self.path!r})"

    # -- lifecycle and monitoring -----------------------------------------------------------

    def start(self) -> None:
        """Open the outbox file and start the uploader; leftover rows from a crash ship first."""
        self._db.open()
        self._ensure_uploader()
        self._wake.set()

    def drain(self, timeout: float | None = None) -> int:
        """Ship pending rows until none is left or `timeout` passes; return how many remain."""
        deadline = float("inf") if timeout is None else time.monotonic() + max(0.0, timeout)
        return self._drain_until(deadline, uploader=False)

    def status(self) -> dict[str, Any]:
        """Return pending rows per table, dead letters, oldest pending age, errors and counters."""
        try:
            snapshot = self._db.snapshot()
            snapshot["outbox_error"] = None
        except StoreError as exc:
            snapshot = {"pending": {}, "pending_total": None, "outbox_error": str(exc)}
        with self._state_lock:
            backoff = max(0.0, self._retry_at - time.monotonic())
            snapshot.update(self._counters)
            snapshot.update(
                path=self.path,
                uploader_running=self._thread is not None and self._thread.is_alive(),
                consecutive_failures=self._consecutive_failures,
                retry_in_seconds=backoff if self._consecutive_failures else 0.0,
                last_error=self._last_error,
                last_shipped_at=self._last_shipped_at,
            )
        return snapshot

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the oldest dead letters (table, row id, attempts, error)."""
        return self._db.dead_letter_rows(limit)

    def requeue_dead_letters(self) -> int:
        """Move every dead letter back into the outbox (once the cause is fixed); return count."""
        moved = self._db.requeue_dead_letters()
        if moved:
            self._wake.set()
        return moved


def open_remote(url: str, **options: Any) -> Store:
    """Open the store named by `url` itself, never wrapped in an outbox (the outbox's remote)."""
    from persistence.stores import open_store

    if "outbox" in inspect.signature(open_store).parameters:
        options["outbox"] = False
    return open_store(url, **options)


def with_outbox(
    remote: Store, path: str | os.PathLike[str] | None = None, **options: Any
) -> OutboxStore:
    """Wrap a remote store in an OutboxStore and start its uploader (ships leftovers first).

    The path defaults to $PIPESTATE_OUTBOX, else pipestate-outbox.db in the working directory.
    """
    if path is None:
        path = os.environ.get(OUTBOX_ENV) or DEFAULT_PATH
    store = OutboxStore(remote, path, **options)
    with contextlib.suppress(StoreError):
        # An unwritable path is reported by every write_batch; opening must not crash callers.
        store.start()
    return store

"""The outbox's uploader: ships the oldest rows to the remote in batches, settles each row.

OutboxStore (persistence/outbox.py) keeps rows durable in its local file; these methods ship
them from a background thread (or an explicit drain): one same-table batch at a time, deleted
once the remote accepted them, dead-lettered when it refuses them for good, kept and retried
with backoff when it fails. Remote errors are redacted before they are kept or logged.
"""

from __future__ import annotations

import threading
import time

from classifier import (
    ErrorType,
    RetryPolicy,
    classify_error,
    get_retry_delay,
    is_retryable,
    redact,
)
from persistence._outbox_db import OutboxDB, OutboxRow
from persistence.stores.base import Store, StoreError
from statemachine._log import lazy_logger

_log = lazy_logger("persistence.outbox")
_MAX_BACKOFF_EXPONENT = 64  # the backoff's attempt number stops growing here (it is capped)


class OutboxUploads:
    """OutboxStore's uploader (a mixin: the state is OutboxStore's, see its __init__)."""

    remote: Store
    path: str
    batch_size: int
    upload_interval_seconds: float
    retry_policy: RetryPolicy
    max_attempts: int
    _db: OutboxDB
    _ship_lock: threading.Lock
    _state_lock: threading.Lock
    _wake: threading.Event
    _stop: threading.Event
    _thread: threading.Thread | None
    _unshipped_writes: int
    _consecutive_failures: int
    _retry_at: float
    _counters: dict[str, int]
    _last_error: str | None
    _last_shipped_at: float | None

    def _ensure_uploader(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        with self._state_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"pipestate-outbox:{self.path}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        """Uploader loop: wake on a full batch, the interval or a retry time; never raise."""
        while not self._stop.is_set():
            with self._state_lock:
                wait = max(0.0, self._retry_at - time.monotonic())
            self._wake.wait(wait if wait > 0 else self.upload_interval_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._drain_until(float("inf"), uploader=True)
            except Exception as exc:  # the uploader must survive anything; it is retried
                _log.exception("outbox_uploader_error", path=self.path)
                self._backoff(f"outbox uploader error: {exc!r}")

    def _drain_until(self, deadline: float, *, uploader: bool) -> int:
        """Ship batches until empty, deadline or (uploader) a backoff/stop; return rows left."""
        force = not uploader  # an explicit drain tries once at once, whatever the backoff
        while not (uploader and self._stop.is_set()):
            with self._state_lock:
                wait = self._retry_at - time.monotonic()
            if wait > 0 and not force:
                if uploader or time.monotonic() + wait >= deadline:
                    break
                time.sleep(wait)  # backing off a failing remote inside a bounded drain
            force = False
            with self._ship_lock:
                batch = self._db.oldest(self.batch_size)
                if not batch:
                    return 0
                if batch[0].attempts > 0:
                    batch = batch[:1]  # isolate a row the remote refused before
                self._ship(batch)
            if time.monotonic() >= deadline:
                break
        return self._db.pending_count()

    def _ship(self, batch: list[OutboxRow]) -> None:
        """Send one same-table batch and settle each row: deleted, dead-lettered or kept."""
        with self._state_lock:
            self._unshipped_writes = max(0, self._unshipped_writes - len(batch))
        table = batch[0].table_name
        try:
            result = self.remote.write_batch(table, [row.row() for row in batch])
        except Exception as exc:
            self._settle_failure(batch, exc)
            return
        rejected: dict[str, str] = {}
        for error in result.rejected:
            rejected[error.row_id] = redact(error.message)
        dead = {row.seq: rejected[row.row_id] for row in batch if row.row_id in rejected}
        unmatched = set(rejected) - {row.row_id for row in batch}
        if unmatched:
            # A rejection we cannot tie to a row can only be one without an id: keep those
            # rows as dead letters rather than delete them as accepted.
            note = "; ".join(rejected[key] for key in sorted(unmatched))
            dead.update({row.seq: note for row in batch if row.row_id is None})
            _log.warning("outbox_unknown_rejections", table=table, row_ids=sorted(unmatched))
        accepted = [row.seq for row in batch if row.seq not in dead]
        self._db.delete(accepted)
        if dead:
            self._db.dead_letter(dead)
            _log.warning(
                "outbox_dead_lettered", table=table, rows=len(dead), error=next(iter(dead.values()))
            )
        with self._state_lock:
            self._counters["rows_shipped"] += len(accepted)
            self._counters["rows_dead_lettered"] += len(dead)
            self._consecutive_failures = 0
            self._retry_at = 0.0
            self._last_shipped_at = time.time()

    def _settle_failure(self, batch: list[OutboxRow], exc: BaseException) -> None:
        """Back off on a failed batch; a row refused max_attempts times goes to dead letters."""
        # Remote errors can echo URLs or headers: never keep a secret in the outbox or the log.
        message = redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, StoreError):
            retryable = exc.retryable
        else:
            retryable = is_retryable(classify_error(exc))
        self._count("remote_failures")
        if retryable:
            self._db.record_failure([row.seq for row in batch], message, count_attempt=False)
        else:
            # A batch-level refusal may come from one bad row: count it, then ship singly.
            done = {row.seq: message for row in batch if row.attempts + 1 >= self.max_attempts}
            self._db.record_failure(
                [row.seq for row in batch if row.seq not in done], message, count_attempt=True
            )
            if done:
                self._db.dead_letter(done)
                with self._state_lock:
                    self._counters["rows_dead_lettered"] += len(done)
        self._backoff(message)
        _log.warning(
            "outbox_ship_failed",
            table=batch[0].table_name,
            rows=len(batch),
            retryable=retryable,
            retry_in_seconds=round(max(0.0, self._retry_at - time.monotonic()), 3),
            error=message,
        )

    def _backoff(self, message: str) -> None:
        with self._state_lock:
            exponent = min(self._consecutive_failures, _MAX_BACKOFF_EXPONENT)
            delay = get_retry_delay(exponent, ErrorType.TRANSIENT, self.retry_policy)
            self._consecutive_failures += 1
            self._retry_at = time.monotonic() + (
                self.retry_policy.max_delay_seconds if delay is None else delay
            )
            self._last_error = message[:2000]

    def _count(self, name: str, n: int = 1) -> None:
        with self._state_lock:
            self._counters[name] += n

    def _note_error(self, message: str) -> None:
        with self._state_lock:
            self._last_error = message[:2000]

"""FanoutSink: one transition feeds the MetadataLogger and any number of exporters.

The primary sink (the logger) gets each record first, exactly as it would alone. The exporters
then get it through their workers: by default one ExportProcess for all of them (one bounded
queue, one append per record, the exporters in one child process, each behind its own queue
there), or an ExportWorker thread per in-process exporter. A slow or dead receiver only ever
fills its own exporter's queue (drops counted by reason) and never delays the pipeline or the
other exporters.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from statemachine._log import lazy_logger
from statemachine.records import TransitionRecord
from statemachine.sink import TransitionSink

_log = lazy_logger("persistence.fanout")

# Field -> environment variable; the same knobs for every exporter.
EXPORT_ENV_VARS: Mapping[str, str] = {
    "queue_size": "PIPESTATE_EXPORT_QUEUE_SIZE",
    "batch_size": "PIPESTATE_EXPORT_BATCH_SIZE",
    "interval_seconds": "PIPESTATE_EXPORT_INTERVAL_SECONDS",
    "stop_timeout_seconds": "PIPESTATE_EXPORT_STOP_TIMEOUT_SECONDS",
}


class ExportFailed(Exception):
    """Some events of a batch were not delivered; `failed` says how many records."""

    def __init__(self, message: str, failed: int) -> None:
        super().__init__(message)
        self.failed = failed


@runtime_checkable
class Exporter(Protocol):
    """Sends batches of records somewhere; called from one worker thread only."""

    name: str

    def export(self, records: Sequence[TransitionRecord]) -> None:
        """Send one batch; raise to report that it was not delivered."""

    def shutdown(self, timeout: float) -> None:
        """Release connections; called once after the last export."""


@runtime_checkable
class ExportWorkerLike(Protocol):
    """What FanoutSink drives: ExportWorker (one exporter) or ExportProcess (several, isolated)."""

    name: str

    def offer(self, record: TransitionRecord) -> None:
        """Queue a record or count it dropped; never blocks for long, never raises."""

    def start(self) -> None:
        """Start working (idempotent)."""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what was offered so far is exported or counted dropped."""

    def stop(self, timeout: float | None = None) -> bool:
        """Drain within `timeout`, count the rest dropped, release everything."""

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every thread (and process) of the worker has ended."""

    def exporter_stats(self) -> dict[str, dict[str, Any]]:
        """Per exporter name: queued, capacity, submitted, exported, in flight, dropped."""


def _positive_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"ExportSettings.{attribute.name} must be an int >= 1 "
            f"(got {value!r} that is a {type(value).__name__})."
        )


def _positive_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:  # type: ignore[operator]
        raise ValueError(
            f"ExportSettings.{attribute.name} must be a finite number of seconds > 0 "
            f"(got {value!r} that is a {type(value).__name__})."
        )


@attrs.frozen(kw_only=True)
class ExportSettings:
    """Queue capacity, batch size, wake-up interval and stop timeout of each exporter's worker."""

    queue_size: int = attrs.field(default=2048, validator=_positive_int)
    batch_size: int = attrs.field(default=64, validator=_positive_int)
    interval_seconds: float = attrs.field(default=1.0, validator=_positive_seconds)
    stop_timeout_seconds: float = attrs.field(default=5.0, validator=_positive_seconds)

    def __attrs_post_init__(self) -> None:
        # OpenTelemetry's BatchProcessor rule: a batch that can never fill is a configuration bug.
        if self.batch_size > self.queue_size:
            raise ValueError(
                f"ExportSettings.batch_size must be <= queue_size "
                f"(got batch_size={self.batch_size}, queue_size={self.queue_size})."
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExportSettings:
        """Defaults overridden by PIPESTATE_EXPORT_* variables; a bad value names its variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, var in EXPORT_ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            kind = int if field in ("queue_size", "batch_size") else float
            try:
                values[field] = kind(raw)
            except ValueError:
                raise ValueError(
                    f"{var} must be {'an integer' if kind is int else 'a number'} (got {raw!r})."
                ) from None
        return cls(**values)


class FanoutSink:
    """A TransitionSink that hands each record to a primary sink, then to every export worker.

    emit() never blocks and never raises: the primary sink keeps its own contract, and an
    export worker only appends to its bounded queue (or counts a drop).
    """

    def __init__(self, primary: TransitionSink, workers: Sequence[ExportWorkerLike] = ()) -> None:
        self.primary = primary
        self.workers: tuple[ExportWorkerLike, ...] = tuple(workers)
        # Bound methods looked up once: emit() is on every transition's path.
        self._primary_emit = primary.emit
        self._offers = tuple(worker.offer for worker in self.workers)

    def emit(self, record: TransitionRecord) -> None:
        """TransitionSink: the primary sink first, then each exporter's queue."""
        try:
            self._primary_emit(record)
        except Exception:  # the primary sink promises not to raise; a broken one must not win
            _log.exception("fanout_primary_emit_failed")
        for offer in self._offers:
            offer(record)

    def start(self) -> None:
        """Start every export worker (idempotent)."""
        for worker in self.workers:
            worker.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every exporter has settled what it was given (True if all did in time)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for worker in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = worker.flush(left) and ok
        return ok

    def stop(self, timeout: float | None = None) -> bool:
        """Drain and stop every export worker within `timeout` in all (True if all drained).

        The primary sink is not stopped: its owner (who started it) does that.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for worker in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = worker.stop(left) and ok
        return ok

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per exporter name: queued, capacity, submitted, exported, dropped by reason."""
        stats: dict[str, dict[str, Any]] = {}
        for worker in self.workers:
            stats.update(worker.exporter_stats())
        return stats

    def __enter__(self) -> FanoutSink:
        """Start the workers."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Drain and stop the workers."""
        self.stop()

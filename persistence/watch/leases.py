"""Run leases: the executor's proof of life, renewed from a thread, append-only in the store.

Every executing pipeline run holds a lease: an ACQUIRED row when it starts, a HEARTBEAT row every
`heartbeat_seconds`, a RELEASED row when it ends. Rows are only ever appended (BigQuery streaming
inserts cannot be updated), each keyed by a deterministic id so a retried write lands once. A
lease is dead once `expires_at` (heartbeat_at + heartbeat_seconds x missed_heartbeats) of its
newest row has passed; the watcher then recovers the run (persistence/watch/recovery.py).

The owner fences itself: if it could not renew for (missed_heartbeats - 1) intervals it calls
`on_lost` and must write nothing more for the run, because a watcher may recover it one interval
later. Heartbeats come from the process's lease threads (one clock, one writer lane per store:
_lease_threads.py), so a processor that blocks the event loop does not make a live run look
dead, and no run starts a thread of its own.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import attrs
import uuid_utils

from persistence.stores.base import Store
from persistence.watch import _lease_threads as _threads

HEARTBEAT_ENV = "PIPESTATE_HEARTBEAT_SECONDS"
MISSED_ENV = "PIPESTATE_LEASE_MISSED_HEARTBEATS"
DEFAULT_HEARTBEAT_SECONDS = 15.0
DEFAULT_MISSED_HEARTBEATS = 4
ACQUIRED, HEARTBEAT, RELEASED, RECOVERED = "ACQUIRED", "HEARTBEAT", "RELEASED", "RECOVERED"
ENDED_EVENTS = (RELEASED, RECOVERED)
LEASE_NAMESPACE = uuid.UUID("0c1b8f2e-3d4a-5b6c-8d7e-9f0a1b2c3d4e")
# The same namespace for uuid_utils: its uuid5 gives the stdlib's ids without importing hashlib
# (OpenSSL's bindings: ~3 ms of a `pipestate run` cold start, for one SHA-1 per lease row).
_LEASE_NAMESPACE = uuid_utils.UUID(str(LEASE_NAMESPACE))
# One id per process: pid alone is reused after restarts and in containers.
OWNER_ID = str(uuid.uuid4())


def _log() -> Any:
    """structlog costs ~150 ms to import: load it only when there is something to say."""
    import structlog

    return structlog.get_logger("pipestate.lease")


def _positive_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0:  # type: ignore[operator]
        raise ValueError(
            f"LeaseSettings.{attribute.name} must be a finite number of seconds >= 0 "
            f"(got {value!r} that is a {type(value).__name__}); 0 turns leases off."
        )


def _at_least_two(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(
            f"LeaseSettings.{attribute.name} must be an int >= 2 "
            f"(got {value!r} that is a {type(value).__name__})."
        )


@attrs.frozen(kw_only=True)
class LeaseSettings:
    """How often a run renews its lease and how many renewals may be missed before it is dead."""

    heartbeat_seconds: float = attrs.field(
        default=DEFAULT_HEARTBEAT_SECONDS, validator=_positive_seconds
    )
    missed_heartbeats: int = attrs.field(default=DEFAULT_MISSED_HEARTBEATS, validator=_at_least_two)

    @property
    def enabled(self) -> bool:
        """False when heartbeat_seconds is 0 (no lease is held)."""
        return self.heartbeat_seconds > 0

    @property
    def lease_seconds(self) -> float:
        """How long a lease lives after its newest row."""
        return self.heartbeat_seconds * self.missed_heartbeats

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LeaseSettings:
        """Read PIPESTATE_HEARTBEAT_SECONDS / PIPESTATE_LEASE_MISSED_HEARTBEATS; overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, name, parse in (
            ("heartbeat_seconds", HEARTBEAT_ENV, float),
            ("missed_heartbeats", MISSED_ENV, int),
        ):
            raw = env.get(name)
            if raw not in (None, ""):
                try:
                    values[field] = parse(raw)
                except ValueError:
                    raise ValueError(f"{name} must be a {parse.__name__} (got {raw!r}).") from None
        values.update(overrides)
        return cls(**values)


@attrs.frozen(kw_only=True)
class LeaseOwner:
    """Who holds a lease: host, process id and a per-process id."""

    host: str = attrs.field(factory=socket.gethostname)
    pid: int = attrs.field(factory=os.getpid)
    owner_id: str = OWNER_ID


_OWNER: LeaseOwner | None = None


def process_owner() -> LeaseOwner:
    """This process's LeaseOwner, built once per process id (a forked child builds its own).

    Built per run before, its socket.gethostname() is a system call that lets go of the GIL:
    getting it back from a busy thread cost the served process's runner ~5 % of its samples
    (issue 13, py-spy).
    """
    global _OWNER
    owner = _OWNER
    if owner is None or owner.pid != os.getpid():
        owner = _OWNER = LeaseOwner()
    return owner


def lease_row(
    *,
    pipeline_logging_id: str,
    org_slug: str,
    pipeline_id: str | None,
    event: str,
    owner: LeaseOwner,
    seq: int,
    at: dt.datetime,
    lease_ms: int,
    metadata: Mapping[str, Any] | None = None,
    row_id: str | None = None,
) -> dict[str, Any]:
    """One org_meta_run_leases row (deterministic id from run, owner and sequence number)."""
    key = row_id or str(
        uuid_utils.uuid5(_LEASE_NAMESPACE, f"{pipeline_logging_id}:{owner.owner_id}:{seq}")
    )
    return {
        "lease_row_id": key,
        "pipeline_logging_id": pipeline_logging_id,
        "org_slug": org_slug,
        "pipeline_id": pipeline_id,
        "event": event,
        "owner_id": owner.owner_id,
        "owner_host": owner.host,
        "owner_pid": owner.pid,
        "heartbeat_seq": seq,
        "heartbeat_at": at.isoformat(),
        "expires_at": (at + dt.timedelta(milliseconds=lease_ms)).isoformat(),
        "lease_ms": lease_ms,
        "lease_date": at.date().isoformat(),
        "metadata": None if metadata is None else _json(metadata),
    }


def _json(value: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(value), sort_keys=True, default=str)


class LeaseKeeper:
    """Holds one run's lease: writes ACQUIRED, heartbeats on the process's lease clock, RELEASED.

    `on_lost()` is called once, from the clock (or writer) thread, when the lease can no longer
    be trusted (no successful renewal for missed_heartbeats - 1 intervals after one had landed).
    No thread of its own: the rows go through the store's lease lane (_lease_threads.py), batched
    with other runs' rows, and the heartbeats and fence checks are entries on one clock.
    """

    def __init__(
        self,
        store: Store,
        *,
        pipeline_logging_id: str,
        org_slug: str,
        pipeline_id: str | None,
        settings: LeaseSettings,
        on_lost: Callable[[], None] | None = None,
        owner: LeaseOwner | None = None,
    ) -> None:
        self.store = store
        self.pipeline_logging_id = pipeline_logging_id
        self.org_slug = org_slug
        self.pipeline_id = pipeline_id
        self.settings = settings
        self.owner = owner or process_owner()
        self.on_lost = on_lost
        self._seq = 0
        self._stop = threading.Event()
        self._last_success: float | None = None  # monotonic start of the last landed write
        self.lost = threading.Event()
        self._beat: list[Any] | None = None  # the clock entries of the next heartbeat / fence
        self._fence: list[Any] | None = None
        self._lose_lock = threading.Lock()
        self.counts = {"written": 0, "failed": 0}

    def begin(self) -> Future[None]:
        """Queue the ACQUIRED row (best effort); heartbeats start once it was tried."""
        future = _threads.submit(self.store, self, ACQUIRED)
        assert future is not None  # only heartbeats are ever skipped
        return future

    def start(self) -> None:
        """Write the ACQUIRED row (best effort) and start heartbeating (blocking form of begin)."""
        self.begin().result()

    def end(self, *, release: bool = True) -> Future[None]:
        """Stop heartbeating; queue RELEASED unless the lease was lost (then write nothing)."""
        self._stop.set()
        _threads.CLOCK.cancel(self._beat)
        _threads.CLOCK.cancel(self._fence)
        self._beat = self._fence = None
        future = None
        if release and not self.lost.is_set():
            future = _threads.submit(self.store, self, RELEASED)
        if future is None:
            future = Future()
            future.set_result(None)
        return future

    def stop(self, *, release: bool = True) -> None:
        """Stop heartbeating and wait for the RELEASED row (blocking form of end)."""
        self.end(release=release).result()

    def valid(self) -> bool:
        """True while the lease can be trusted; on expiry, marks it lost (cheap: one clock read).

        The executor's sink asks before every record, so a run whose heartbeat is stuck (a hung
        store call, a paused process) still stops writing before a watcher may act.
        """
        if self.lost.is_set():
            return False
        last = self._last_success
        if last is not None and time.monotonic() - last >= self._fence_after:
            self._lose()
            return False
        return True

    @property
    def _fence_after(self) -> float:
        return self.settings.heartbeat_seconds * (self.settings.missed_heartbeats - 1)

    def _check(self) -> None:
        """On the clock thread: the fence check (valid() marks the lease lost when due)."""
        self.valid()

    def _heartbeat(self) -> None:
        """On the clock thread: queue a HEARTBEAT row unless stopped or already lost."""
        self._beat = None
        if self.valid():
            _threads.submit(self.store, self, HEARTBEAT, unless=self._stop.is_set)

    def _lose(self) -> None:
        with self._lose_lock:  # the sink (loop thread) and the clock thread may both get here
            if self.lost.is_set():
                return
            self.lost.set()
        _log().error(
            "lease_lost",
            pipeline_logging_id=self.pipeline_logging_id,
            owner_id=self.owner.owner_id,
            reason="no heartbeat landed within the fencing window; the run stops writing",
        )
        if self.on_lost is not None:
            try:
                self.on_lost()
            except Exception as exc:  # the clock thread must not die on a callback bug
                _log().error("lease_on_lost_failed", error=repr(exc))

    def _row(self, event: str) -> dict[str, Any]:
        """On the lane thread: this lease's next row (the sequence number grows by one)."""
        seq = self._seq
        self._seq += 1
        return lease_row(
            pipeline_logging_id=self.pipeline_logging_id,
            org_slug=self.org_slug,
            pipeline_id=self.pipeline_id,
            event=event,
            owner=self.owner,
            seq=seq,
            at=dt.datetime.now(dt.UTC),
            lease_ms=int(self.settings.lease_seconds * 1000),
        )

    def _written(self, event: str, started: float, error: str | None) -> None:
        """On the lane thread, once the row was tried: count, re-arm the fence, plan a beat."""
        if error is not None:  # a store outage must not kill the run: count and go on
            self.counts["failed"] += 1
            _log().warning("lease_write_failed", lease_event=event, error=error[:300])
        else:
            self.counts["written"] += 1
            self._last_success = started
        if event == RELEASED or self._stop.is_set():
            return
        if error is None:
            # Check the lease again when it would need fencing, even if a later write hangs.
            fence = _threads.CLOCK.at(started + self._fence_after + 0.001, self._check)
            _threads.CLOCK.cancel(self._fence)
            self._fence = fence
        if self.valid():  # the write itself may have hung past the fencing window
            self._beat = _threads.CLOCK.at(
                time.monotonic() + self.settings.heartbeat_seconds, self._heartbeat
            )
        if self._stop.is_set():  # end() ran meanwhile: it may have missed the new entries
            _threads.CLOCK.cancel(self._beat)
            _threads.CLOCK.cancel(self._fence)

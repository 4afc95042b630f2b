"""Run leases: the executor's proof of life, renewed from a thread, append-only in the store.

Every executing pipeline run holds a lease: an ACQUIRED row when it starts, a HEARTBEAT row every
`heartbeat_seconds`, a RELEASED row when it ends. Rows are only ever appended (BigQuery streaming
inserts cannot be updated), each keyed by a deterministic id so a retried write lands once. A
lease is dead once `expires_at` (heartbeat_at + heartbeat_seconds x missed_heartbeats) of its
newest row has passed; the watcher then recovers the run (persistence/watch/recovery.py).

The owner fences itself: if it could not renew for (missed_heartbeats - 1) intervals it calls
`on_lost` and must write nothing more for the run, because a watcher may recover it one interval
later. Heartbeats come from a thread, so a processor that blocks the event loop does not make a
live run look dead.
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
from typing import Any

import attrs
import uuid_utils

from persistence.stores.base import RUN_LEASES, Store

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
    """Holds one run's lease: writes ACQUIRED, heartbeats from a daemon thread, RELEASED at stop.

    `on_lost()` is called once, from the heartbeat thread, when the lease can no longer be
    trusted (no successful renewal for missed_heartbeats - 1 intervals after one had landed).
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
        self.owner = owner or LeaseOwner()
        self.on_lost = on_lost
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_success: float | None = None  # monotonic start of the last landed write
        self.lost = threading.Event()
        self._fence_timer: threading.Timer | None = None
        self._lose_lock = threading.Lock()
        self.counts = {"written": 0, "failed": 0}

    def start(self) -> None:
        """Write the ACQUIRED row (best effort) and start the heartbeat thread."""
        self._write(ACQUIRED)
        self._thread = threading.Thread(
            target=self._loop, name=f"pipestate-lease-{self.pipeline_logging_id[:8]}", daemon=True
        )
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop heartbeating; write RELEASED unless the lease was lost (then write nothing)."""
        self._stop.set()
        if self._thread is not None:
            # A lost lease's thread may be stuck in a hung store call: do not wait for it.
            wait = 0.1 if self.lost.is_set() else self.settings.heartbeat_seconds + 5.0
            self._thread.join(wait)
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        if release and not self.lost.is_set():
            self._write(RELEASED)

    def valid(self) -> bool:
        """True while the lease can be trusted; on expiry, marks it lost (cheap: one clock read).

        The executor's sink asks before every record, so a run whose heartbeat thread is stuck
        (a hung store call, a paused process) still stops writing before a watcher may act.
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

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            if not self.valid():
                return
            self._write(HEARTBEAT)
            if not self.valid():  # the write itself may have hung past the fencing window
                return

    def _lose(self) -> None:
        with self._lose_lock:  # the sink (loop thread) and the keeper thread may both get here
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
            except Exception as exc:  # the keeper thread must not die on a callback bug
                _log().error("lease_on_lost_failed", error=repr(exc))

    def _write(self, event: str) -> None:
        started = time.monotonic()
        seq = self._seq
        self._seq += 1
        row = lease_row(
            pipeline_logging_id=self.pipeline_logging_id,
            org_slug=self.org_slug,
            pipeline_id=self.pipeline_id,
            event=event,
            owner=self.owner,
            seq=seq,
            at=dt.datetime.now(dt.UTC),
            lease_ms=int(self.settings.lease_seconds * 1000),
        )
        try:
            result = self.store.write_batch(RUN_LEASES, [row])
            if result.rejected:
                raise ValueError(f"row rejected: {result.rejected[0].message}")
        except Exception as exc:  # a store outage must not kill the run: count and go on
            self.counts["failed"] += 1
            _log().warning("lease_write_failed", lease_event=event, error=str(exc)[:300])
            return
        self.counts["written"] += 1
        self._last_success = started
        self._arm_fence(started)

    def _arm_fence(self, started: float) -> None:
        """Check the lease again when it would need fencing, even if the thread is stuck."""
        delay = max(0.0, started + self._fence_after - time.monotonic())
        timer = threading.Timer(delay + 0.001, self.valid)
        timer.daemon = True
        previous, self._fence_timer = self._fence_timer, timer
        if previous is not None:
            previous.cancel()
        if not self._stop.is_set():
            timer.start()

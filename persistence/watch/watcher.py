"""The Watcher: every interval, recover orphaned runs, then evaluate alerts and notify.

`Watcher(store).start()` runs cycles on a daemon thread until `stop()`; `cycle()` runs one, in
the caller's thread (what `pipestate recover` and `pipestate alerts check` do). A service plugs
it into its lifespan: start() on startup, stop() on shutdown. A failing cycle is logged and
counted; the next one runs anyway.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping

import attrs
import structlog

from persistence.stores.base import Store
from persistence.watch.alerts import AlertEvent, Firing, advance_incidents, evaluate
from persistence.watch.leases import LeaseOwner, LeaseSettings
from persistence.watch.notify import Notifier
from persistence.watch.recovery import RecoveryOutcome, sweep
from persistence.watch.rules import DEFAULT_CONFIG, AlertConfig
from statemachine.clock import SYSTEM_CLOCK, Clock

INTERVAL_ENV = "PIPESTATE_WATCH_INTERVAL_SECONDS"
_log = structlog.get_logger("pipestate.watch")


def interval_from_env(environ: Mapping[str, str] | None = None) -> float:
    """PIPESTATE_WATCH_INTERVAL_SECONDS, else the heartbeat interval (15 s by default)."""
    env = os.environ if environ is None else environ
    raw = env.get(INTERVAL_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{INTERVAL_ENV} must be a number of seconds (got {raw!r}).") from None
        if not value > 0:
            raise ValueError(f"{INTERVAL_ENV} must be > 0 (got {raw!r}).")
        return value
    heartbeat = LeaseSettings.from_env(env).heartbeat_seconds
    return heartbeat if heartbeat > 0 else 15.0


@attrs.frozen(kw_only=True)
class CycleReport:
    """What one cycle did: runs recovered or skipped, alerts firing, incident events, errors."""

    recoveries: tuple[RecoveryOutcome, ...] = ()
    firing: tuple[Firing, ...] = ()
    events: tuple[AlertEvent, ...] = ()
    errors: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def recovered(self) -> tuple[RecoveryOutcome, ...]:
        """Only the runs actually recovered."""
        return tuple(o for o in self.recoveries if o.recovered)


class Watcher:
    """Sweeps orphans and evaluates alert rules on one store, once or every interval."""

    def __init__(
        self,
        store: Store,
        *,
        config: AlertConfig | None = None,
        interval_seconds: float | None = None,
        notifier: Notifier | None = None,
        recover: bool = True,
        alerts: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.config = config or DEFAULT_CONFIG
        self.interval_seconds = (
            interval_from_env() if interval_seconds is None else interval_seconds
        )
        self.notifier = notifier if notifier is not None else Notifier(self.config.channels)
        self.recover = recover
        self.alerts = alerts
        self.clock = clock or SYSTEM_CLOCK
        self.owner = LeaseOwner()
        self.cycles = 0
        self.failed_cycles = 0
        self.last_report: CycleReport | None = None
        self._stop = threading.Event()
        self._cycle_done = threading.Condition()
        self._thread: threading.Thread | None = None

    def cycle(self) -> CycleReport:
        """Run one sweep + alert evaluation now; errors are reported, never raised."""
        started = time.perf_counter()
        now = self.clock.now()
        errors: list[str] = []
        recoveries: list[RecoveryOutcome] = []
        firing: list[Firing] = []
        events: list[AlertEvent] = []
        if self.recover:
            try:
                recoveries = sweep(self.store, now=now, recovered_by=self.owner, clock=self.clock)
            except Exception as exc:
                errors.append(f"sweep: {exc}")
        for outcome in recoveries:
            if outcome.recovered and outcome.orphan is not None:
                self.notifier.notify(
                    f"[pipestate] RECOVERED run {outcome.pipeline_logging_id}",
                    f"pipeline {outcome.orphan.pipeline_id} run {outcome.pipeline_logging_id}: "
                    f"{outcome.entities} entities ended FAILED; lost {outcome.orphan.describe()}",
                )
        if self.alerts:
            try:
                firing = evaluate(self.store, self.config.rules, now=now, limit=self.config.limit)
                events = advance_incidents(self.store, self.config, firing, now=now)
            except Exception as exc:
                errors.append(f"alerts: {exc}")
        for event in events:
            self.notifier.notify(event.title, event.firing.summary, event.event)
        report = CycleReport(
            recoveries=tuple(recoveries),
            firing=tuple(firing),
            events=tuple(events),
            errors=tuple(errors),
            seconds=time.perf_counter() - started,
        )
        for error in errors:
            _log.error("watch_cycle_failed", error=error[:500])
        with self._cycle_done:
            self.cycles += 1
            self.failed_cycles += bool(errors)
            self.last_report = report
            self._cycle_done.notify_all()
        return report

    def wait_for_cycles(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least `count` cycles have finished (True) or `timeout` passes."""
        with self._cycle_done:
            return self._cycle_done.wait_for(lambda: self.cycles >= count, timeout)

    def start(self) -> None:
        """Run cycles every interval on a daemon thread (the first one right away)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pipestate-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current cycle and deliver queued notifications; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.notifier.close(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.cycle()
            self._stop.wait(self.interval_seconds)

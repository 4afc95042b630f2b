"""Shared pieces of the watchdog tests: hand-built runs and leases, and a webhook receiver."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from persistence.stores.base import RUN_LEASES, STATE_TRANSITIONS, Store
from persistence.watch.leases import ACQUIRED, HEARTBEAT, LeaseOwner, lease_row
from statemachine.records import TransitionRecord

NOW = dt.datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=dt.UTC)
DEAD_OWNER = LeaseOwner(host="worker-7", pid=4242, owner_id="owner-dead")
LIVE_OWNER = LeaseOwner(host="worker-8", pid=4343, owner_id="owner-live")


class Runs:
    """Builds transition records of runs as the state machines would emit them."""

    def __init__(self, id_prefix: str = "") -> None:
        self.records: list[TransitionRecord] = []
        self.id_prefix = id_prefix

    def add(
        self,
        run: str,
        when: dt.datetime,
        entity: str,
        from_state: str,
        to_state: str,
        *,
        step: str | None = None,
        error_type: str | None = None,
        retry_count: int = 0,
        metadata: dict[str, Any] | None = None,
        error_message: str | None = None,
        org: str = "acme",
    ) -> None:
        """Append one record."""
        self.records.append(
            TransitionRecord(
                transition_id=f"{self.id_prefix}{run}-{len(self.records):04d}",
                org_slug=org,
                pipeline_logging_id=run,
                step_logging_id=step,
                entity_type="STEP" if step else "PIPELINE",
                entity_name=entity,
                from_state=from_state,
                to_state=to_state,
                transition_time=when,
                transition_date=when.date(),
                error_type=error_type,
                error_message=error_message,
                retry_count=retry_count,
                metadata=metadata or {},
                trigger_type="schedule",
            )
        )

    def crashed(self, run: str, start: dt.datetime, *, pipeline: str = "etl") -> None:
        """A run that crashed: one step COMPLETED, one RUNNING, one RETRYING (never finished)."""
        self.add(run, start, pipeline, "PENDING", "RUNNING")
        t = start + dt.timedelta(seconds=1)
        self.add(run, t, "extract", "PENDING", "RUNNING", step=f"{run}-s1")
        self.add(
            run, t + dt.timedelta(seconds=1), "extract", "RUNNING", "COMPLETED", step=f"{run}-s1"
        )
        self.add(run, t + dt.timedelta(seconds=2), "load", "PENDING", "RUNNING", step=f"{run}-s2")
        self.add(run, t + dt.timedelta(seconds=2), "flaky", "PENDING", "RUNNING", step=f"{run}-s3")
        self.add(
            run,
            t + dt.timedelta(seconds=3),
            "flaky",
            "RUNNING",
            "RETRYING",
            step=f"{run}-s3",
            error_type="TRANSIENT",
        )

    def finished(
        self, run: str, start: dt.datetime, *, pipeline: str = "etl", error_type: str | None = None
    ) -> None:
        """A one-step run that COMPLETED, or FAILED with `error_type`."""
        self.add(run, start, pipeline, "PENDING", "RUNNING")
        self.add(run, start, "only", "PENDING", "RUNNING", step=f"{run}-s1")
        end = start + dt.timedelta(seconds=5)
        to = "FAILED" if error_type else "COMPLETED"
        self.add(run, end, "only", "RUNNING", to, step=f"{run}-s1", error_type=error_type)
        self.add(run, end, pipeline, "RUNNING", to, error_type=error_type)

    def write(self, store: Store) -> None:
        """Write every record to the store."""
        store.write_batch(STATE_TRANSITIONS, [r.to_row() for r in self.records])


def write_lease(
    store: Store,
    run: str,
    last_beat: dt.datetime,
    *,
    lease_ms: int = 4000,
    owner: LeaseOwner = DEAD_OWNER,
    beats: int = 2,
    event: str | None = None,
) -> None:
    """An ACQUIRED row and `beats` heartbeats ending at `last_beat` (or one `event` row last)."""
    rows = []
    for seq in range(beats + 1):
        at = last_beat - dt.timedelta(milliseconds=lease_ms // 4 * (beats - seq))
        kind = ACQUIRED if seq == 0 else HEARTBEAT
        if event is not None and seq == beats:
            kind = event
        rows.append(
            lease_row(
                pipeline_logging_id=run,
                org_slug="acme",
                pipeline_id="etl",
                event=kind,
                owner=owner,
                seq=seq,
                at=at,
                lease_ms=lease_ms,
            )
        )
    store.write_batch(RUN_LEASES, rows)


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POSTed JSON body."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = status
        self.arrived = threading.Condition()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` bodies arrived."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)


@contextmanager
def receiver(status: int = 200) -> Iterator[tuple[Receiver, int]]:
    """Run a Receiver on a free port of 127.0.0.1; yields (receiver, port); always stops it."""
    state = Receiver(status)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            self.send_response(state.status)
            self.end_headers()
            with state.arrived:
                state.bodies.append(body)
                state.paths.append(self.path)
                state.arrived.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

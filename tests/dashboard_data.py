"""Known stored rows for the dashboard tests: the parity suite's realistic history plus the cases
the dashboard draws specially (a dependency-failed step, a cancelled failure, retry advice,
hostile names), built as the state machines would emit them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.test_persistence_parity import NOW, History, realistic_history

HOSTILE_PIPELINE = "<script>alert(1)</script>"
HOSTILE_MESSAGE = '<img src=x onerror="alert(2)"><b>bold</b> & "quoted"'


def _run(history: History, start: dt.datetime, *, org: str, name: str) -> dict[str, Any]:
    """Start a pipeline run by hand; returns the common fields of its rows."""
    pid = f"pl-{len(history.pipeline_ids):03d}"
    history.pipeline_ids.append(pid)
    base = {"org_slug": org, "pipeline_logging_id": pid}
    pipe = {**base, "step_logging_id": None, "entity_type": "PIPELINE", "entity_name": name}
    history._add(start, **pipe, from_state="PENDING", to_state="RUNNING", reason="started")
    return pipe


def dependency_failed_run(history: History, start: dt.datetime) -> str:
    """A run whose `extract` fails after one retry and whose `load` fails from PENDING."""
    pipe = _run(history, start, org="acme", name=HOSTILE_PIPELINE)
    pid = pipe["pipeline_logging_id"]
    step = {"org_slug": "acme", "pipeline_logging_id": pid, "entity_type": "STEP"}
    extract = {**step, "step_logging_id": f"{pid}-extract", "entity_name": "extract"}
    load = {**step, "step_logging_id": f"{pid}-load", "entity_name": "load"}
    t = start
    history._add(t, **extract, from_state="PENDING", to_state="RUNNING")
    t += dt.timedelta(seconds=3)
    advice = {"error_class": "builtins.ConnectionError", "is_retryable": True}
    history._add(
        t,
        **extract,
        from_state="RUNNING",
        to_state="RETRYING",
        error_type="TRANSIENT",
        error_message=HOSTILE_MESSAGE,
        duration_in_state_ms=3000,
        metadata={**advice, "next_retry_delay_seconds": 2.5},
    )
    t += dt.timedelta(seconds=2)
    history._add(
        t, **extract, from_state="RETRYING", to_state="RUNNING", retry_count=1, metadata={}
    )
    t += dt.timedelta(seconds=4)
    history._add(
        t,
        **extract,
        from_state="RUNNING",
        to_state="FAILED",
        error_type="PERMANENT",
        error_message=HOSTILE_MESSAGE,
        stack_trace_truncated='Traceback (most recent call last):\n  File "<x>"\nValueError',
        retry_count=1,
        duration_in_state_ms=4000,
        metadata={"error_class": "builtins.ValueError", "is_retryable": False},
    )
    history._add(
        t,
        **load,
        from_state="PENDING",
        to_state="FAILED",
        error_type="DEPENDENCY_FAILURE",
        reason="Dependency extract failed",
    )
    history._add(
        t + dt.timedelta(microseconds=5),
        **pipe,
        from_state="RUNNING",
        to_state="FAILED",
        error_type="PERMANENT",
        duration_in_state_ms=9000,
        reason="1 step failed",
    )
    return str(pid)


def cancelled_run(history: History, start: dt.datetime) -> str:
    """A run cancelled by a signal: its FAILED rows carry metadata.cancelled (not failures)."""
    pipe = _run(history, start, org="acme", name="nightly")
    pid = pipe["pipeline_logging_id"]
    step = {"org_slug": "acme", "pipeline_logging_id": pid, "entity_type": "STEP"}
    step.update(step_logging_id=f"{pid}-s0", entity_name="extract")
    cancel = {"cancelled": True, "cancel_source": "sigterm"}
    history._add(start, **step, from_state="PENDING", to_state="RUNNING")
    end = start + dt.timedelta(seconds=1)
    history._add(
        end,
        **step,
        from_state="RUNNING",
        to_state="FAILED",
        error_type="UNKNOWN",
        reason="Cancelled by SIGTERM",
        duration_in_state_ms=1000,
        metadata=cancel,
    )
    history._add(
        end,
        **pipe,
        from_state="RUNNING",
        to_state="FAILED",
        error_type="UNKNOWN",
        reason="Cancelled by SIGTERM",
        duration_in_state_ms=1000,
        metadata=cancel,
    )
    return str(pid)


def running_run(history: History, start: dt.datetime) -> str:
    """A run still RUNNING, its first step done and its second step RUNNING since `start`."""
    pipe = _run(history, start, org="acme", name="hourly-sync")
    pid = pipe["pipeline_logging_id"]
    step = {"org_slug": "acme", "pipeline_logging_id": pid, "entity_type": "STEP"}
    first = {**step, "step_logging_id": f"{pid}-s0", "entity_name": "extract"}
    second = {**step, "step_logging_id": f"{pid}-s1", "entity_name": "transform"}
    history._add(start, **first, from_state="PENDING", to_state="RUNNING")
    done = start + dt.timedelta(seconds=5)
    history._add(
        done, **first, from_state="RUNNING", to_state="COMPLETED", duration_in_state_ms=5000
    )
    history._add(done, **second, from_state="PENDING", to_state="RUNNING")
    return str(pid)


def dashboard_history() -> tuple[History, dict[str, str]]:
    """The realistic history plus the special runs; returns it and the special runs' ids."""
    history = realistic_history()
    ids = {
        "dependency": dependency_failed_run(history, NOW - dt.timedelta(hours=5)),
        "cancelled": cancelled_run(history, NOW - dt.timedelta(hours=6)),
        "running": running_run(history, NOW - dt.timedelta(hours=1)),
    }
    return history, ids

"""Hypothesis strategies for watchdog stores: transitions and leases of a few runs, near NOW.

Runs come from a small pool of ids so that lease joins, "later transition" probes and group-bys
all meet; times stay within two hours of WATCH_NOW so every rule's window sees some rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import strategies as st

from persistence.watch.leases import ACQUIRED, HEARTBEAT, RECOVERED, RELEASED, LeaseOwner, lease_row
from statemachine.records import TransitionRecord

WATCH_NOW = dt.datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=dt.UTC)
RUN_IDS = ("run-a", "run-b", "run-c", "run-d")
STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "RETRYING")
ERROR_TYPES = ("TRANSIENT", "PERMANENT", "TIMEOUT", "UNKNOWN")
_ids = itertools.count()
_when = st.integers(min_value=-2 * 3600 * 10**6, max_value=60 * 10**6).map(
    lambda us: WATCH_NOW + dt.timedelta(microseconds=us)
)


@st.composite
def watch_records(draw: st.DrawFn) -> TransitionRecord:
    """A transition of one of a few runs, within two hours before WATCH_NOW (or just after)."""
    entity_type = draw(st.sampled_from(("PIPELINE", "STEP")))
    run = draw(st.sampled_from(RUN_IDS))
    when = draw(_when)
    error_type = draw(st.one_of(st.none(), st.sampled_from(ERROR_TYPES)))
    cancelled = draw(st.sampled_from((None, True, False)))
    return TransitionRecord(
        transition_id=f"w-{next(_ids)}",
        org_slug="acme",
        pipeline_logging_id=run,
        step_logging_id=f"{run}-{draw(st.sampled_from('xyz'))}" if entity_type == "STEP" else None,
        entity_type=entity_type,
        entity_name=draw(st.sampled_from(("etl", "billing", "load"))),
        from_state=draw(st.sampled_from(STATES)),
        to_state=draw(st.sampled_from(STATES)),
        transition_time=when,
        transition_date=when.date(),
        error_type=error_type,
        error_message="boom" if error_type else None,
        retry_count=draw(st.integers(min_value=0, max_value=3)),
        metadata={} if cancelled is None else {"cancelled": cancelled},
    )


@st.composite
def lease_rows(draw: st.DrawFn) -> dict[str, Any]:
    """One org_meta_run_leases row of one of the runs."""
    run = draw(st.sampled_from(RUN_IDS))
    return lease_row(
        pipeline_logging_id=run,
        org_slug="acme",
        pipeline_id="etl",
        event=draw(st.sampled_from((ACQUIRED, HEARTBEAT, HEARTBEAT, RELEASED, RECOVERED))),
        owner=LeaseOwner(host="h", pid=1, owner_id="o"),
        seq=next(_ids),
        at=draw(_when),
        lease_ms=draw(st.sampled_from((1000, 60_000, 3_600_000))),
    )

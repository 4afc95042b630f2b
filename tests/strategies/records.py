"""Strategies and builders for TransitionRecords, plus store decorators for the logger tests.

The decorators wrap a real SQLiteStore and delegate to it: the logger is what is under test, so
the store may hang, fail or recover on cue.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from persistence import SQLiteStore
from persistence.stores.base import StoreError, WriteResult
from statemachine.records import TransitionRecord

STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "RETRYING")
ERROR_TYPES = ("TRANSIENT", "PERMANENT", "TIMEOUT", "VALIDATION_ERROR", "DEPENDENCY_FAILURE")
BASE_TIME = dt.datetime(2025, 12, 21, 12, 0, 0, tzinfo=dt.UTC)
_ids = itertools.count()

# Text that exercises JSON and SQL escaping without control characters that break nothing new.
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
_metadata_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    _text,
    st.lists(st.integers(), max_size=3),
)


@st.composite
def transition_records(draw: st.DrawFn, *, id_prefix: str = "t") -> TransitionRecord:
    """Any valid TransitionRecord, with a unique transition_id (unique per test session)."""
    entity_type = draw(st.sampled_from(("PIPELINE", "STEP")))
    when = BASE_TIME + dt.timedelta(
        microseconds=draw(st.integers(min_value=-(10**12), max_value=10**12))
    )
    error_type = draw(st.one_of(st.none(), st.sampled_from(ERROR_TYPES)))
    return TransitionRecord(
        transition_id=f"{id_prefix}-{next(_ids)}",
        org_slug=draw(_ident),
        pipeline_logging_id=draw(_ident),
        step_logging_id=draw(_ident) if entity_type == "STEP" else None,
        entity_type=entity_type,
        entity_name=draw(_ident),
        from_state=draw(st.sampled_from(STATES)),
        to_state=draw(st.sampled_from(STATES)),
        transition_time=when,
        transition_date=when.date(),
        reason=draw(st.one_of(st.none(), _text)),
        error_type=error_type,
        error_message=draw(st.one_of(st.none(), _text)) if error_type else None,
        stack_trace_truncated=draw(st.one_of(st.none(), st.text(max_size=2500))),
        retry_count=draw(st.integers(min_value=0, max_value=10)),
        duration_in_state_ms=draw(st.integers(min_value=0, max_value=10**9)),
        metadata=draw(st.dictionaries(_ident, _metadata_values, max_size=4)),
        trigger_type=draw(st.one_of(st.none(), st.sampled_from(("api", "schedule", "cli")))),
        user_id=draw(st.one_of(st.none(), _ident)),
    )


def record(
    *,
    transition_id: str | None = None,
    pipeline_logging_id: str = "run-1",
    entity_type: str = "PIPELINE",
    entity_name: str = "billing",
    step_logging_id: str | None = None,
    from_state: str = "PENDING",
    to_state: str = "RUNNING",
    at: dt.datetime = BASE_TIME,
    **fields: Any,
) -> TransitionRecord:
    """A hand-built TransitionRecord for tests with known answers; unspecified fields are dull."""
    return TransitionRecord(
        transition_id=transition_id or f"r-{next(_ids)}",
        org_slug=fields.pop("org_slug", "acme"),
        pipeline_logging_id=pipeline_logging_id,
        step_logging_id=step_logging_id,
        entity_type=entity_type,
        entity_name=entity_name,
        from_state=from_state,
        to_state=to_state,
        transition_time=at,
        transition_date=at.date(),
        **fields,
    )


def many_records(
    count: int, *, prefix: str = "bulk", pipelines: int = 100
) -> list[TransitionRecord]:
    """`count` distinct records spread over `pipelines` runs (fast; no hypothesis)."""
    return [
        TransitionRecord(
            transition_id=f"{prefix}-{i}",
            org_slug="acme",
            pipeline_logging_id=f"{prefix}-run-{i % pipelines}",
            step_logging_id=None,
            entity_type="PIPELINE",
            entity_name="billing",
            from_state="RUNNING",
            to_state="COMPLETED",
            transition_time=BASE_TIME,
            transition_date=BASE_TIME.date(),
            metadata={"i": i},
        )
        for i in range(count)
    ]


class RecordingStore:
    """Delegates, remembers each batch size, and sets `reached` once `target` rows were written."""

    def __init__(self, inner: SQLiteStore, target: int = 0) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.target = target
        self.reached = threading.Event()
        self._lock = threading.Lock()

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Write, then count."""
        result = self.inner.write_batch(table, rows)
        with self._lock:
            self.batches.append(len(rows))
            if self.target and sum(self.batches) >= self.target:
                self.reached.set()
        return result

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Delegate."""
        return self.inner.query(name, params)

    def close(self) -> None:
        """Delegate."""
        self.inner.close()


class GatedStore(RecordingStore):
    """Blocks every write until `gate` is set (a store that hangs, then maybe recovers)."""

    def __init__(self, inner: SQLiteStore, target: int = 0) -> None:
        super().__init__(inner, target)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Wait for the gate (bounded, so a failed test never leaks a thread for long)."""
        self.entered.set()
        self.gate.wait(timeout=30)
        return super().write_batch(table, rows)


class FlakyStore(RecordingStore):
    """Fails the first `failures` writes with a retryable StoreError, then delegates.

    With after_write=True each failing call writes first and then raises, like a timeout on
    an insert that did land: a retry must not duplicate.
    """

    def __init__(
        self,
        inner: SQLiteStore,
        failures: int,
        *,
        retryable: bool = True,
        after_write: bool = False,
    ) -> None:
        super().__init__(inner)
        self.failures = failures
        self.retryable = retryable
        self.after_write = after_write
        self.calls = 0

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Fail on cue, otherwise delegate."""
        with self._lock:
            self.calls += 1
            fail = self.calls <= self.failures
        if fail:
            if self.after_write:
                self.inner.write_batch(table, rows)
            raise StoreError(f"injected failure {self.calls}", retryable=self.retryable)
        return super().write_batch(table, rows)


class DownStore:
    """A store that is down for good: every write raises a retryable error."""

    def __init__(self) -> None:
        self.calls = 0

    def write_batch(self, table: str, rows: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Always fail."""
        self.calls += 1
        raise StoreError("connection refused", retryable=True)

    def query(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Always fail."""
        raise StoreError("connection refused", retryable=True)

    def close(self) -> None:
        """Nothing to close."""

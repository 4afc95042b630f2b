"""Tests for create_error_context: the seed's keys, JSON-ready, redacted, never raising."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import ErrorType, RetryPolicy, create_error_context
from tests.strategies.errors import (
    exceptions,
    fresh_classifier_caches,  # noqa: F401 - autouse fixture
)

SEED_KEYS = {
    "error_type",
    "error_class",
    "error_message",
    "is_retryable",
    "retry_count",
    "stack_trace",
    "stack_trace_truncated",
    "failed_step",
    "next_retry_delay_seconds",
    "additional_context",
}


def _raised(exc: BaseException) -> BaseException:
    """Raise and catch exc so it carries a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


class TestCreateErrorContext:
    """create_error_context describes one failure for the audit row."""

    def test_seed_example(self) -> None:
        """The seed's example: a timeout at retry 2 advises an 8 s delay."""
        ctx = create_error_context(
            _raised(asyncio.TimeoutError()),  # noqa: UP041 - the seed's example, verbatim
            "extract_data",
            2,
            {"timeout_seconds": 600},
        )
        assert set(ctx) == SEED_KEYS
        assert ctx["error_type"] == "TIMEOUT"
        assert ctx["error_class"] == "builtins.TimeoutError"  # asyncio's alias since 3.11
        assert ctx["is_retryable"] is True
        assert ctx["retry_count"] == 2
        assert ctx["failed_step"] == "extract_data"
        assert ctx["next_retry_delay_seconds"] == 8.0
        assert ctx["additional_context"] == {"timeout_seconds": 600}
        assert "Traceback" in ctx["stack_trace"]

    def test_connection_error_class_name(self) -> None:
        """error_class is module-qualified, as the seed shows."""
        ctx = create_error_context(ConnectionError("reset"), "load")
        assert ctx["error_class"] == "builtins.ConnectionError"
        assert ctx["error_type"] == "TRANSIENT"

    def test_not_retryable_has_no_delay(self) -> None:
        """A permanent failure advises no retry."""
        ctx = create_error_context(PermissionError("denied"), "load")
        assert ctx["is_retryable"] is False
        assert ctx["next_retry_delay_seconds"] is None

    def test_error_type_override(self) -> None:
        """The executor can impose DEPENDENCY_FAILURE."""
        ctx = create_error_context(
            ConnectionError("x"), "load", error_type=ErrorType.DEPENDENCY_FAILURE
        )
        assert ctx["error_type"] == "DEPENDENCY_FAILURE"
        assert ctx["is_retryable"] is False

    def test_policy_is_used(self) -> None:
        """The delay follows the given policy."""
        ctx = create_error_context(TimeoutError(), "x", 1, policy=RetryPolicy(base_delay_seconds=5))
        assert ctx["next_retry_delay_seconds"] == 10.0

    def test_none_exception(self) -> None:
        """No exception: UNKNOWN, no class, no trace."""
        ctx = create_error_context(None, None)
        assert ctx["error_type"] == "UNKNOWN"
        assert ctx["error_class"] is None
        assert ctx["stack_trace"] is None
        assert ctx["stack_trace_truncated"] is None

    def test_secrets_are_redacted_everywhere(self) -> None:
        """Message, traces and context values lose their secrets."""
        exc = _raised(ConnectionError("could not connect to postgres://etl:hunter2@db/app"))
        ctx = create_error_context(exc, "load", additional_context={"dsn": "x://u:pw123@h"})
        dumped = json.dumps(ctx)
        assert "hunter2" not in dumped
        assert "pw123" not in dumped
        assert "etl:***@db" in ctx["error_message"]

    def test_long_trace_is_truncated(self) -> None:
        """stack_trace_truncated holds the first 2,000 characters."""
        ctx = create_error_context(_raised(ValueError("x" * 5000)), "parse")
        assert len(ctx["stack_trace_truncated"]) == 2000
        assert ctx["stack_trace"].startswith(ctx["stack_trace_truncated"])

    def test_unserialisable_context_values(self) -> None:
        """Datetimes, sets, bytes, objects and NaN become JSON-safe."""
        ctx = create_error_context(
            TimeoutError(),
            "x",
            additional_context={
                "when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                "s": {3, 1},
                "b": b"\xff",
                "o": object(),
                "nan": float("nan"),
                1: "k",
            },
        )
        json.dumps(ctx, allow_nan=False)
        assert ctx["additional_context"]["when"] == "2024-01-01T00:00:00+00:00"
        assert ctx["additional_context"]["s"] == [1, 3]

    def test_cyclic_context(self) -> None:
        """A self-referencing dict is bounded, not infinite."""
        cyclic: dict[str, object] = {}
        cyclic["self"] = cyclic
        json.dumps(create_error_context(None, "x", additional_context=cyclic))

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(
        exceptions(),
        st.one_of(st.none(), st.text(max_size=30)),
        st.integers(-5, 10**9),
        st.dictionaries(
            st.text(max_size=10),
            st.one_of(st.text(), st.binary(), st.floats(), st.none()),
            max_size=4,
        ),
    )
    def test_never_raises_and_is_json(
        self, exc: BaseException, step: str | None, retry: int, extra: dict[str, object]
    ) -> None:
        """Invariant: for any exception and context the result is strict JSON with a short trace."""
        ctx = create_error_context(exc, step, retry, extra)
        json.dumps(ctx, allow_nan=False)
        assert set(ctx) == SEED_KEYS
        assert ctx["stack_trace_truncated"] is None or len(ctx["stack_trace_truncated"]) <= 2000


class TestQualifiedName:
    """error_class names the exception's real home."""

    def test_library_class_keeps_its_module(self) -> None:
        """A library exception is named module.qualname, not as a builtin."""
        from classifier.context import qualified_name

        cls = type("Err", (Exception,), {"__module__": "lib.errors", "__qualname__": "Outer.Err"})
        assert qualified_name(cls("x")) == "lib.errors.Outer.Err"
        assert qualified_name(ValueError("x")) == "builtins.ValueError"
        assert qualified_name(None) is None


class TestBounds:
    """retry_count and the message bound, which mutation testing found untested."""

    def test_retry_count_is_clamped_to_a_natural_number(self) -> None:
        """A negative or non-integer retry_count is stored as 0; the default is 0."""
        exc = ValueError("x")
        assert create_error_context(exc, "load")["retry_count"] == 0
        assert create_error_context(exc, "load", retry_count=-3)["retry_count"] == 0
        assert create_error_context(exc, "load", retry_count=0)["retry_count"] == 0
        assert create_error_context(exc, "load", retry_count=2)["retry_count"] == 2

    def test_long_message_keeps_its_full_bound_and_masks_a_straddling_secret(self) -> None:
        """A secret that straddles the cut is masked whole, and the message keeps its bound."""
        from classifier.context import MAX_MESSAGE_CHARS

        text = "x" * (MAX_MESSAGE_CHARS - 12) + " password=hunter2secretvalue " + "y" * 5000
        out = create_error_context(ValueError(text), "load")["error_message"]
        assert len(out) == MAX_MESSAGE_CHARS
        assert "hunter" not in out

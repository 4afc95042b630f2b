"""statemachine._failure: an exception becomes a record's reason, error fields and metadata."""

from __future__ import annotations

import pytest

from classifier import ErrorType, RetryPolicy, classify_error, get_retry_delay
from statemachine._failure import REASON_MESSAGE_LIMIT, coerce_error_type, error_fields
from statemachine._scrub import REASON_LIMIT


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def _fields(**changes: object) -> tuple[str, str, str, str | None, dict[str, object]]:
    args: dict[str, object] = {
        "template": "Step failed with {cause}",
        "error": None,
        "error_type": None,
        "step_name": "load",
        "retry_count": 0,
        "reason": None,
        "metadata": None,
        "policy": None,
    }
    args.update(changes)
    return error_fields(**args)  # type: ignore[arg-type]


class TestErrorFields:
    """What error_fields returns for an exception, a bare error type, and caller values."""

    def test_exception_cause_and_fields(self) -> None:
        """The cause is 'class: message' cut at REASON_MESSAGE_LIMIT; the stack is kept."""
        error = _raised(ValueError("y" * (REASON_MESSAGE_LIMIT + 50)))
        reason, kind, message, stack, meta = _fields(error=error)
        cut = "y" * REASON_MESSAGE_LIMIT
        assert reason == f"Step failed with builtins.ValueError: {cut}"
        assert kind == str(classify_error(error))
        assert message == "y" * (REASON_MESSAGE_LIMIT + 50)
        assert stack is not None
        assert "ValueError" in stack
        assert meta["error_class"] == "builtins.ValueError"

    def test_bare_error_type(self) -> None:
        """Without an exception the cause is the error type, the message the reason, no stack."""
        reason, kind, message, stack, meta = _fields(error_type="DEPENDENCY_FAILURE")
        assert reason == "Step failed with DEPENDENCY_FAILURE"
        assert kind == "DEPENDENCY_FAILURE"
        assert message == reason
        assert stack is None
        assert meta["error_class"] is None

    def test_computed_keys_win_over_caller_keys(self) -> None:
        """Caller metadata is kept, but error_class / is_retryable / delay are the computed ones."""
        error = _raised(ConnectionError("reset"))
        caller = {"error_class": "mine", "is_retryable": "maybe", "rows": 3}
        _, _, _, _, meta = _fields(error=error, metadata=caller, retry_count=1)
        assert meta["rows"] == 3
        assert meta["error_class"] == "builtins.ConnectionError"
        assert meta["is_retryable"] is True
        assert isinstance(meta["next_retry_delay_seconds"], float)
        assert caller["error_class"] == "mine"

    def test_caller_reason_scrubbed_and_kept(self) -> None:
        """A caller's reason replaces the template and is redacted."""
        reason, *_ = _fields(error_type="PERMANENT", reason="bad password=hunter2secret")
        assert reason.startswith("bad ")
        assert "hunter2" not in reason

    def test_template_gets_retry_count(self) -> None:
        """The template's {retry_count} is the count given."""
        reason, *_ = _fields(template="retry {retry_count}: {cause}", error_type="TRANSIENT")
        assert reason == "retry 0: TRANSIENT"
        reason, *_ = _fields(
            template="retry {retry_count}: {cause}", error_type="TRANSIENT", retry_count=3
        )
        assert reason == "retry 3: TRANSIENT"


class TestCoerce:
    """coerce_error_type accepts members and their names, and names the field otherwise."""

    def test_members_and_text(self) -> None:
        """Every ErrorType, as member or text, comes back as that member."""
        for member in ErrorType:
            assert coerce_error_type(member) is member
            assert coerce_error_type(member.value) is member

    def test_unknown_named(self) -> None:
        """An unknown value raises ValueError listing the allowed values and the value given."""
        with pytest.raises(ValueError, match="SOMETIMES") as info:
            coerce_error_type("SOMETIMES")
        text = str(info.value)
        assert text.startswith("'error_type' must be one of")
        assert all(t.value in text for t in ErrorType)
        assert text.endswith("(got 'SOMETIMES').")


class TestRetryDelay:
    """The delay a record carries is the policy's delay for the record's retry count."""

    def test_delay_follows_retry_count(self) -> None:
        """next_retry_delay_seconds is get_retry_delay at the count given, not at zero."""
        policy = RetryPolicy(base_delay_seconds=1.0)
        error = _raised(ConnectionError("reset"))
        first = get_retry_delay(0, ErrorType.TRANSIENT, policy)
        later = get_retry_delay(3, ErrorType.TRANSIENT, policy)
        assert first != later
        for count, expected in ((0, first), (3, later)):
            _, _, _, _, meta = _fields(error=error, retry_count=count, policy=policy)
            assert meta["next_retry_delay_seconds"] == expected


class TestMessageEdges:
    """An empty message adds nothing to the cause; a long one is kept to the message bound."""

    def test_empty_message(self) -> None:
        """An exception without a message leaves only its class name in the cause."""
        reason, _, _, _, _ = _fields(error=_raised(ValueError()))
        assert reason.rstrip(": ") == "Step failed with builtins.ValueError"

    def test_long_message_kept_beyond_reason_bound(self) -> None:
        """error_message keeps more than a reason's REASON_LIMIT characters."""
        text = ("ab " * REASON_LIMIT)[: REASON_LIMIT + 1000]
        _, _, message, _, _ = _fields(error=_raised(RuntimeError(text)))
        assert message == text

"""Turns an exception given to fail() / retry() / time_out() into a record's error fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statemachine._scrub import scrub_metadata, scrub_optional
from statemachine.records import STACK_TRACE_LIMIT

if TYPE_CHECKING:
    from classifier import ErrorType, RetryPolicy

REASON_MESSAGE_LIMIT = 200
# classifier.create_error_context already cuts error_message to 8192 characters; this bound
# holds whatever it returns.
ERROR_MESSAGE_LIMIT = 8192


def coerce_error_type(value: object) -> ErrorType:
    """Return `value` as an ErrorType, raising a ValueError that names the field otherwise."""
    from classifier import ErrorType

    if isinstance(value, ErrorType):
        return value
    try:
        return ErrorType(str(value))
    except ValueError:
        raise ValueError(
            f"'error_type' must be one of {[t.value for t in ErrorType]} (got {value!r})."
        ) from None


def error_fields(
    *,
    template: str,
    error: BaseException | None,
    error_type: ErrorType | str | None,
    step_name: str | None,
    retry_count: int,
    reason: str | None,
    metadata: dict[str, Any] | None,
    policy: RetryPolicy | None,
) -> tuple[str, str, str, str | None, dict[str, Any]]:
    """Classify `error` and return (reason, error_type, error_message, stack_trace, metadata)."""
    from classifier import DEFAULT_POLICY, create_error_context

    forced = None if error_type is None else coerce_error_type(error_type)
    ctx = create_error_context(
        error,
        step_name,
        retry_count=retry_count,
        additional_context=dict(metadata) if metadata else None,
        policy=DEFAULT_POLICY if policy is None else policy,
        error_type=forced,
    )
    kind = str(ctx["error_type"])
    message = ctx.get("error_message") or None
    error_class = ctx.get("error_class")
    if error is not None and error_class:
        cause = f"{error_class}: {(message or '')[:REASON_MESSAGE_LIMIT]}"
    else:
        cause = kind
    # Failure text is where secrets turn up (a DSN in a connection error, a token echoed by
    # an API): every string that reaches the record is scrubbed, whoever wrote it.
    reason = (
        scrub_optional(
            template.format(cause=cause, retry_count=retry_count) if reason is None else reason
        )
        or ""
    )
    merged: dict[str, Any] = scrub_metadata(dict(metadata)) if metadata else {}
    # Computed facts win over caller keys of the same name: queries group on them.
    merged["error_class"] = error_class
    merged["is_retryable"] = ctx.get("is_retryable")
    merged["next_retry_delay_seconds"] = ctx.get("next_retry_delay_seconds")
    stack = ctx.get("stack_trace_truncated") if error is not None else None
    message = scrub_optional(message, ERROR_MESSAGE_LIMIT)
    stack = scrub_optional(stack or None, STACK_TRACE_LIMIT)
    return reason, kind, message if message is not None else reason, stack, merged

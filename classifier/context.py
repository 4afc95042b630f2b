"""create_error_context: the structured, redacted, JSON-ready description of one failure."""

from __future__ import annotations

import traceback
from typing import Any

from classifier._jsonsafe import json_safe
from classifier.engine import MAX_SCAN_CHARS, classify_error, safe_str
from classifier.redact import redact
from classifier.retry import DEFAULT_POLICY, RetryPolicy, get_retry_delay
from classifier.types import ErrorType, coerce_error_type, is_retryable

STACK_TRACE_LIMIT = 2000  # the seed's stack_trace_truncated length
MAX_MESSAGE_CHARS = 8192  # error_message is a short field; the full text is in stack_trace
# Secrets straddling a cut are redacted whole: redact this much more, then cut.
_REDACT_SLACK = 1024


def qualified_name(exception: BaseException | None) -> str | None:
    """module.qualname of the exception's class ("builtins.ConnectionError"); None for None.

    Python 3.11 made asyncio.TimeoutError an alias of the builtin, so it reports as
    "builtins.TimeoutError"; the name is the class's real home, not the alias used to raise it.
    """
    if exception is None:
        return None
    cls = type(exception)
    module = getattr(cls, "__module__", None) or "builtins"
    qualname = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "Exception")
    return f"{module}.{qualname}"


def format_stack_trace(exception: BaseException | None) -> str | None:
    """The formatted traceback (with chained causes), bounded, then redacted; never raises."""
    if exception is None:
        return None
    try:
        text = "".join(traceback.format_exception(exception))
    except Exception:
        text = f"{qualified_name(exception)}: {safe_str(exception)}"
    return redact(text[: MAX_SCAN_CHARS + _REDACT_SLACK])[:MAX_SCAN_CHARS]


def create_error_context(
    exception: BaseException | None,
    step_name: str | None,
    retry_count: int = 0,
    additional_context: dict[str, Any] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    error_type: ErrorType | str | None = None,
) -> dict[str, Any]:
    """Classify exception and describe it for the audit row; JSON-serialisable, never raises.

    error_type, when given, overrides classification (the executor knows a step was skipped
    because of an upstream failure better than any message does).
    """
    decided = coerce_error_type(error_type) if error_type is not None else classify_error(exception)
    count = retry_count if isinstance(retry_count, int) and retry_count >= 0 else 0
    stack_trace = format_stack_trace(exception)
    # Redact before the final cut, with slack, so a secret straddling the bound is not half kept.
    message = (
        redact(safe_str(exception)[: MAX_MESSAGE_CHARS + _REDACT_SLACK])[:MAX_MESSAGE_CHARS]
        if exception is not None
        else None
    )
    return {
        "error_type": decided.value,
        "error_class": qualified_name(exception),
        "error_message": message,
        "is_retryable": is_retryable(decided),
        "retry_count": count,
        "stack_trace": stack_trace,
        "stack_trace_truncated": stack_trace[:STACK_TRACE_LIMIT] if stack_trace else None,
        "failed_step": None if step_name is None else json_safe(step_name),
        "next_retry_delay_seconds": get_retry_delay(count, decided, policy),
        "additional_context": json_safe(additional_context or {}),
    }

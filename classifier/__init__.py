"""Error classification, retry advice and redaction for pipeline failures.

Usage::

    from classifier import classify_error, is_retryable, get_retry_delay, create_error_context

    error_type = classify_error(exc)
    if is_retryable(error_type):
        delay = get_retry_delay(retry_count, error_type)
"""

from __future__ import annotations

from classifier.context import create_error_context
from classifier.engine import classify_error
from classifier.errors import DependencyFailure, PipestateError, ValidationError
from classifier.redact import redact
from classifier.retry import DEFAULT_POLICY, RetryPolicy, get_retry_delay
from classifier.types import ErrorType, is_retryable

__all__ = [
    "DEFAULT_POLICY",
    "DependencyFailure",
    "ErrorType",
    "PipestateError",
    "RetryPolicy",
    "ValidationError",
    "classify_error",
    "create_error_context",
    "get_retry_delay",
    "is_retryable",
    "redact",
]

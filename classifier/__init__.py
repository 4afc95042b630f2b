"""Error classification, retry advice and redaction for pipeline failures.

Usage::

    from classifier import classify_error, is_retryable, get_retry_delay, create_error_context

    error_type = classify_error(exc)
    if is_retryable(error_type):
        delay = get_retry_delay(retry_count, error_type)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier._lazy import lazy_exports

# `redact` is both a function and the submodule that defines it: importing the submodule would
# otherwise set the package attribute to the module, so the function is bound eagerly (cheap:
# its regexes compile on first use).
from classifier.redact import redact

if TYPE_CHECKING:
    from classifier.context import create_error_context
    from classifier.engine import classify_error
    from classifier.errors import DependencyFailure, PipestateError, ValidationError
    from classifier.retry import DEFAULT_POLICY, RetryPolicy, get_retry_delay
    from classifier.types import ErrorType, is_retryable

# Public names are imported on first use: `import classifier._x` (a light submodule) must not load
# the whole package, and `pipestate validate` / `--help` should not pay for what they never call.
_WHERE: dict[str, str] = {
    "DEFAULT_POLICY": "classifier.retry",
    "DependencyFailure": "classifier.errors",
    "ErrorType": "classifier.types",
    "PipestateError": "classifier.errors",
    "RetryPolicy": "classifier.retry",
    "ValidationError": "classifier.errors",
    "classify_error": "classifier.engine",
    "create_error_context": "classifier.context",
    "get_retry_delay": "classifier.retry",
    "is_retryable": "classifier.types",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

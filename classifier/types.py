"""The error categories the classifier assigns, and which of them are worth a retry."""

from __future__ import annotations

import enum


class ErrorType(enum.StrEnum):
    """Category of a failure; the value equals the name so it stores as a plain string."""

    TRANSIENT = "TRANSIENT"
    PERMANENT = "PERMANENT"
    TIMEOUT = "TIMEOUT"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    DEPENDENCY_FAILURE = "DEPENDENCY_FAILURE"
    UNKNOWN = "UNKNOWN"


RETRYABLE: frozenset[ErrorType] = frozenset({ErrorType.TRANSIENT, ErrorType.TIMEOUT})


def coerce_error_type(value: ErrorType | str | None) -> ErrorType:
    """Return the ErrorType named by value; anything unrecognised is UNKNOWN."""
    if isinstance(value, ErrorType):
        return value
    if isinstance(value, str):
        try:
            return ErrorType(value.strip().upper())
        except ValueError:
            return ErrorType.UNKNOWN
    return ErrorType.UNKNOWN


def is_retryable(error_type: ErrorType | str | None) -> bool:
    """True for TRANSIENT and TIMEOUT only; UNKNOWN is not retried, to avoid endless loops."""
    return coerce_error_type(error_type) in RETRYABLE

"""LoggerSettings: the MetadataLogger's knobs, with the seed's defaults and env variables."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import attrs

# Field -> environment variable (the seed's four, plus the put timeout and retry count).
ENV_VARS: Mapping[str, str] = {
    "batch_size": "METADATA_LOG_BATCH_SIZE",
    "flush_interval_seconds": "METADATA_LOG_FLUSH_INTERVAL_SECONDS",
    "queue_size": "METADATA_LOG_QUEUE_SIZE",
    "workers": "METADATA_LOG_WORKERS",
    "put_timeout": "METADATA_LOG_PUT_TIMEOUT_SECONDS",
    "max_flush_retries": "METADATA_LOG_MAX_FLUSH_RETRIES",
}


def _positive_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Reject anything but an int >= 1 (bools too)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"LoggerSettings.{attribute.name} must be an int >= 1 "
            f"(got {value!r} that is a {type(value).__name__})."
        )


def _non_negative_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Reject anything but an int >= 0 (bools too)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"LoggerSettings.{attribute.name} must be an int >= 0 "
            f"(got {value!r} that is a {type(value).__name__})."
        )


def _seconds(*, allow_zero: bool) -> Any:
    """Validator for a finite, non-negative (or strictly positive) number of seconds."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value >= 0 if allow_zero else value > 0)
        )
        if not ok:
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(
                f"LoggerSettings.{attribute.name} must be a finite number of seconds {bound} "
                f"(got {value!r} that is a {type(value).__name__})."
            )

    return check


@attrs.frozen(kw_only=True)
class LoggerSettings:
    """Batching, queueing and retry settings; defaults are the seed's 100 / 5 s / 1000 / 5."""

    batch_size: int = attrs.field(default=100, validator=_positive_int)
    flush_interval_seconds: float = attrs.field(default=5.0, validator=_seconds(allow_zero=False))
    queue_size: int = attrs.field(default=1000, validator=_positive_int)
    workers: int = attrs.field(default=5, validator=_positive_int)
    # How long a caller may wait for room in a full queue; 0 drops at once (the hot path).
    put_timeout: float = attrs.field(default=5.0, validator=_seconds(allow_zero=True))
    # Retries of one failed, retryable flush before its rows are dropped as store_unavailable.
    max_flush_retries: int = attrs.field(default=5, validator=_non_negative_int)
    retry_base_delay_seconds: float = attrs.field(default=0.2, validator=_seconds(allow_zero=True))
    retry_max_delay_seconds: float = attrs.field(default=5.0, validator=_seconds(allow_zero=True))

    def __attrs_post_init__(self) -> None:
        """Cross-field checks: a batch must fit in the queue; the delay cap above the base."""
        if self.batch_size > self.queue_size:
            raise ValueError(
                f"LoggerSettings.batch_size must be <= queue_size "
                f"(got batch_size={self.batch_size} > queue_size={self.queue_size})."
            )
        if self.retry_max_delay_seconds < self.retry_base_delay_seconds:
            raise ValueError(
                "LoggerSettings.retry_max_delay_seconds must be >= retry_base_delay_seconds "
                f"(got {self.retry_max_delay_seconds!r} < {self.retry_base_delay_seconds!r})."
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LoggerSettings:
        """Read the METADATA_LOG_* variables (unset or empty -> default); overrides win.

        Raises ValueError naming the variable and the bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            variable = ENV_VARS.get(field.name)
            raw = env.get(variable, "").strip() if variable else ""
            if field.name in overrides or not raw:
                continue
            wants_int = field.type in ("int", int)
            try:
                number: int | float = int(raw) if wants_int else float(raw)
                if field.validator is not None:
                    field.validator(None, field, number)
            except ValueError as exc:
                if "LoggerSettings." in str(exc):  # parsed, but out of range
                    raise ValueError(f"{variable}={raw!r} is invalid: {exc}") from None
                kind = "an integer" if wants_int else "a number of seconds"
                raise ValueError(f"{variable} must be {kind} (got {raw!r}).") from None
            values[field.name] = number
        values.update(overrides)
        try:
            return cls(**values)
        except ValueError as exc:
            from_env = [f"{ENV_VARS[k]}={env[ENV_VARS[k]]!r}" for k in values if k not in overrides]
            where = f" (set by {', '.join(from_env)})" if from_env else ""
            raise ValueError(f"{exc}{where}") from None

"""Retry policy and the pure exponential-backoff function."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

from classifier.types import ErrorType, is_retryable

if TYPE_CHECKING:  # random costs ~1.4 ms to import: only a jittered retry needs it
    import random


def _finite_number(minimum: float, *, strict: bool = False) -> Any:
    """Build an attrs validator for a real, finite number >= minimum (> when strict)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > minimum if strict else value >= minimum)
        )
        if not ok:
            raise ValueError(
                f"RetryPolicy.{attribute.name} must be a finite number {bound} "
                f"(got {value!r} that is a {type(value).__name__})."
            )

    return check


def _non_negative_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Reject anything but a non-negative int (bools included, they are a typo)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"RetryPolicy.{attribute.name} must be an int >= 0 "
            f"(got {value!r} that is a {type(value).__name__})."
        )


def _unit_interval(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Jitter is a fraction of the delay, so it must lie in [0, 1]."""
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 <= value <= 1.0
    )
    if not ok:
        raise ValueError(
            f"RetryPolicy.{attribute.name} must be a number in [0, 1] "
            f"(got {value!r} that is a {type(value).__name__})."
        )


@attrs.frozen
class RetryPolicy:
    """How often and how long to wait before retrying a retryable failure.

    delay(n) = min(max_delay_seconds, base_delay_seconds * multiplier ** n); with jitter j the
    delay is then drawn uniformly from [delay * (1 - j), delay], so jitter only ever shortens it.
    """

    max_retries: int = attrs.field(default=3, validator=_non_negative_int)
    base_delay_seconds: float = attrs.field(default=2.0, validator=_finite_number(0.0))
    multiplier: float = attrs.field(default=2.0, validator=_finite_number(1.0))
    max_delay_seconds: float = attrs.field(default=300.0, validator=_finite_number(0.0))
    jitter: float = attrs.field(default=0.0, validator=_unit_interval)

    def __attrs_post_init__(self) -> None:
        """Cross-field check: the cap must not be below the first delay."""
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError(
                "RetryPolicy.max_delay_seconds must be >= base_delay_seconds "
                f"(got {self.max_delay_seconds!r} < {self.base_delay_seconds!r})."
            )


DEFAULT_POLICY = RetryPolicy()


def backoff_delay(retry_count: int, policy: RetryPolicy = DEFAULT_POLICY) -> float:
    """Capped exponential delay for attempt retry_count, computed without overflow."""
    n = max(0, int(retry_count))
    base, mult, cap = policy.base_delay_seconds, policy.multiplier, policy.max_delay_seconds
    if base == 0.0 or cap == 0.0:
        return 0.0
    # Compare in log space first: base * mult ** n overflows a float long before n is "huge".
    if math.log(base) + n * math.log(mult) >= math.log(cap):
        return float(cap)
    return float(min(cap, base * mult**n))


def get_retry_delay(
    retry_count: int,
    error_type: ErrorType | str,
    policy: RetryPolicy = DEFAULT_POLICY,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before retry number retry_count + 1, or None if error_type is not retryable.

    None (rather than 0) makes "do not retry" impossible to mistake for "retry immediately".
    The result lies in [0, policy.max_delay_seconds]; without jitter it never decreases as
    retry_count grows. Jitter is drawn from rng (default: a fresh random.Random()).
    """
    if not is_retryable(error_type):
        return None
    delay = backoff_delay(retry_count, policy)
    if policy.jitter > 0.0 and delay > 0.0:
        if rng is None:
            import random

            rng = random.Random()
        source = rng
        delay -= delay * policy.jitter * source.random()
    return float(min(max(delay, 0.0), policy.max_delay_seconds))

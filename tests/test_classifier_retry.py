"""Tests for RetryPolicy and the pure backoff function get_retry_delay."""

from __future__ import annotations

import random

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import DEFAULT_POLICY, ErrorType, RetryPolicy, get_retry_delay, is_retryable
from tests.strategies.errors import fresh_classifier_caches  # noqa: F401 - autouse fixture

policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(min_value=0, max_value=20),
    base_delay_seconds=st.floats(min_value=0, max_value=100),
    multiplier=st.floats(min_value=1, max_value=10),
    max_delay_seconds=st.floats(min_value=100, max_value=10_000),
    jitter=st.floats(min_value=0, max_value=1),
)


class TestRetryPolicy:
    """RetryPolicy is a frozen, validated record."""

    def test_defaults_match_the_seed(self) -> None:
        """Base 2 s, multiplier 2, cap 300 s, 3 retries, no jitter."""
        assert RetryPolicy(3, 2.0, 2.0, 300.0, 0.0) == DEFAULT_POLICY

    def test_frozen(self) -> None:
        """A policy cannot be mutated; use attrs.evolve."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            DEFAULT_POLICY.max_retries = 5  # type: ignore[misc]
        assert attrs.evolve(DEFAULT_POLICY, max_retries=5).max_retries == 5

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"max_retries": -1}, "max_retries"),
            ({"max_retries": True}, "max_retries"),
            ({"base_delay_seconds": -0.5}, "base_delay_seconds"),
            ({"base_delay_seconds": float("nan")}, "base_delay_seconds"),
            ({"multiplier": 0.5}, "multiplier"),
            ({"max_delay_seconds": float("inf")}, "max_delay_seconds"),
            ({"jitter": 1.5}, "jitter"),
            ({"jitter": "0.1"}, "jitter"),
            ({"base_delay_seconds": 10.0, "max_delay_seconds": 5.0}, "max_delay_seconds"),
        ],
    )
    def test_invalid_values_name_field_expectation_and_value(
        self, kwargs: dict[str, object], field: str
    ) -> None:
        """The error message names the field, what was expected and what was received."""
        with pytest.raises(ValueError, match=rf"RetryPolicy\.{field} must be") as info:
            RetryPolicy(**kwargs)  # type: ignore[arg-type]
        assert "got" in str(info.value)


class TestGetRetryDelay:
    """get_retry_delay is a pure function of its arguments."""

    def test_seed_example(self) -> None:
        """retry_count=2, TIMEOUT, default policy -> 8.0 seconds."""
        assert get_retry_delay(2, ErrorType.TIMEOUT) == 8.0

    def test_sequence_and_cap(self) -> None:
        """2, 4, 8, ... capped at 300."""
        delays = [get_retry_delay(n, "TRANSIENT") for n in range(10)]
        assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]

    @pytest.mark.parametrize(
        "error_type",
        [
            ErrorType.PERMANENT,
            ErrorType.VALIDATION_ERROR,
            ErrorType.DEPENDENCY_FAILURE,
            ErrorType.UNKNOWN,
            "nonsense",
        ],
    )
    def test_non_retryable_returns_none(self, error_type: ErrorType | str) -> None:
        """Non-retryable types get None, never a number."""
        assert get_retry_delay(0, error_type) is None
        assert not is_retryable(error_type)

    def test_huge_retry_count_does_not_overflow(self) -> None:
        """A retry count far beyond float range returns the cap."""
        assert get_retry_delay(10**12, ErrorType.TRANSIENT) == 300.0

    def test_negative_retry_count_is_treated_as_zero(self) -> None:
        """A negative count gets the base delay."""
        assert get_retry_delay(-3, ErrorType.TRANSIENT) == 2.0

    def test_jitter_is_reproducible_with_injected_rng(self) -> None:
        """The same seeded random source gives the same delay."""
        policy = RetryPolicy(jitter=0.5)
        first = get_retry_delay(3, "TIMEOUT", policy, random.Random(7))
        second = get_retry_delay(3, "TIMEOUT", policy, random.Random(7))
        assert first == second
        assert first is not None
        assert 8.0 <= first <= 16.0

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(policies, st.integers(min_value=0, max_value=200))
    def test_without_jitter_delay_never_decreases(self, policy: RetryPolicy, n: int) -> None:
        """Invariant: with jitter 0, delay(n + 1) >= delay(n) for every policy and n."""
        policy = attrs.evolve(policy, jitter=0.0)
        now = get_retry_delay(n, ErrorType.TRANSIENT, policy)
        later = get_retry_delay(n + 1, ErrorType.TRANSIENT, policy)
        assert now is not None
        assert later is not None
        assert later >= now

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(policies, st.integers(min_value=-5, max_value=10**6), st.integers())
    def test_with_jitter_delay_stays_in_bounds(
        self, policy: RetryPolicy, n: int, seed: int
    ) -> None:
        """Invariant: with any jitter the delay lies in [0, max_delay_seconds]."""
        delay = get_retry_delay(n, ErrorType.TIMEOUT, policy, random.Random(seed))
        assert delay is not None
        assert 0.0 <= delay <= policy.max_delay_seconds

"""ServiceSettings: what `pipestate serve` runs with (flags > environment > these defaults)."""

from __future__ import annotations

import os
from typing import Any

import attrs

from pipestate.service._api_priority import DEFAULT_RUNNER_NICE, DEFAULT_RUNNER_YIELD_US

ROOT_KEY_ENV = "CA_ROOT_API_KEY"
SWITCH_INTERVAL_ENV = "PIPESTATE_SWITCH_INTERVAL_MS"
RUNNER_ENV = "PIPESTATE_SERVE_RUNNER"
RUNNER_NICE_ENV = "PIPESTATE_RUNNER_NICE"
RUNNER_YIELD_ENV = "PIPESTATE_RUNNER_YIELD_US"
# Where the pipelines run (_runner.py): "thread", a loop in a runner thread; "loop", tasks on
# the serving loop itself.
RUNNER_CHOICES = ("thread", "loop")
DEFAULT_RUNNER = "thread"
DEFAULT_MAX_RUNNING = 100


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"ServiceSettings.{attribute.name} must be > 0 (got {value!r}).")


def _not_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"ServiceSettings.{attribute.name} must be >= 0 (got {value!r}).")


@attrs.frozen(kw_only=True)
class ServiceSettings:
    """Store, configs, admission limits, timeouts and the root key of one service process."""

    store_url: str = "sqlite:pipestate.db"
    config_dir: str = "configs"
    # Pipelines running at once in this process, and per organisation (its fair share).
    max_running: int = attrs.field(default=DEFAULT_MAX_RUNNING, validator=_positive)
    max_running_per_org: int | None = None
    # SIGTERM/SIGINT: running pipelines get this long to finish before they are cancelled.
    grace_seconds: float = attrs.field(default=30.0, validator=_positive)
    # ?wait=true answers after at most this long (with the run still going if it is).
    max_wait_seconds: float = attrs.field(default=60.0, validator=_positive)
    max_body_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    key_cache_seconds: float = attrs.field(default=2.0, validator=_positive)
    # A pipeline's parsed config is trusted this long before its file is checked (a stat)
    # again: an edit or a removal is seen within this time; 0 checks on every submit.
    config_cache_seconds: float = attrs.field(default=1.0, validator=_not_negative)
    retry_after_seconds: int = attrs.field(default=1, validator=_positive)
    # Never shown: repr=False keeps it out of logs and tracebacks.
    root_key: str | None = attrs.field(default=None, repr=False)
    outbox_path: str | None = None
    # The served process's GIL switch interval in ms (sys.setswitchinterval); None keeps
    # CPython's 5 ms. Lower bounds how long the API thread waits for the GIL held by the
    # runner thread, at the price of more switches (benchmarks/service.py: docs/api.md).
    switch_interval_ms: float | None = attrs.field(default=None)

    runner: str = attrs.field(default=DEFAULT_RUNNER)
    # The API thread before the runs (_api_priority.py): niceness added to the runner thread
    # (and what it starts: the writer child), and the GIL pause in microseconds a busy runner
    # loop offers once a millisecond; 0 turns either off. The serving-loop runner ignores both.
    runner_nice: int = attrs.field(default=DEFAULT_RUNNER_NICE)
    runner_yield_us: int = attrs.field(default=DEFAULT_RUNNER_YIELD_US)

    @runner_nice.validator
    def _check_runner_nice(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 19:
            raise ValueError(
                f"ServiceSettings.runner_nice must be an integer from 0 to 19 (got {value!r})."
            )

    @runner_yield_us.validator
    def _check_runner_yield(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
            raise ValueError(
                "ServiceSettings.runner_yield_us must be an integer from 0 to 1000 "
                f"microseconds (got {value!r})."
            )

    @runner.validator
    def _check_runner(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in RUNNER_CHOICES:
            raise ValueError(
                f"ServiceSettings.runner must be one of {', '.join(RUNNER_CHOICES)} "
                f"(got {value!r})."
            )

    @switch_interval_ms.validator
    def _check_switch_interval(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            _positive(self, attribute, value)

    @property
    def per_org_limit(self) -> int:
        """Runs one org may hold at once: the setting, else half the process limit (>= 1)."""
        if self.max_running_per_org is not None:
            return max(1, min(self.max_running_per_org, self.max_running))
        return max(1, self.max_running // 2)

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceSettings:
        """Settings with the root key from $CA_ROOT_API_KEY unless given; overrides win."""
        overrides.setdefault("root_key", os.environ.get(ROOT_KEY_ENV) or None)
        raw = os.environ.get(SWITCH_INTERVAL_ENV)
        if raw and "switch_interval_ms" not in overrides:
            try:
                overrides["switch_interval_ms"] = float(raw)
            except ValueError:
                raise ValueError(
                    f"{SWITCH_INTERVAL_ENV} must be a number of milliseconds (got {raw!r})."
                ) from None
        runner = os.environ.get(RUNNER_ENV)
        if runner and "runner" not in overrides:
            overrides["runner"] = runner
        for env, field in ((RUNNER_NICE_ENV, "runner_nice"), (RUNNER_YIELD_ENV, "runner_yield_us")):
            raw = os.environ.get(env)
            if raw and overrides.get(field) is None:
                try:
                    overrides[field] = int(raw)
                except ValueError:
                    raise ValueError(f"{env} must be an integer (got {raw!r}).") from None
        for field in ("runner_nice", "runner_yield_us"):
            if overrides.get(field, 0) is None:
                del overrides[field]
        return cls(**overrides)  # type: ignore[arg-type]

"""Alert rules as data: one frozen record per kind, loaded from a YAML file with clear errors.

A rules file (PIPESTATE_ALERT_RULES, or `--rules`) looks like:

    remind_after_minutes: 60
    channels: [log, "json://127.0.0.1:8080/hook"]     # Apprise URLs, plus `log`
    rules:
      - {name: stuck, kind: stuck, running_for_minutes: 60}
      - {name: transient-spike, kind: failure_rate, error_type: TRANSIENT,
         window_minutes: 60, threshold: 0.5, min_count: 3}
      - {name: retries, kind: retries_exhausted, window_minutes: 60}
      - {name: permanent, kind: permanent_failure, window_minutes: 1440}

Without a file, DEFAULT_CONFIG applies (one rule of each kind, log channel only). Apprise URLs
from PIPESTATE_ALERT_URLS (whitespace or comma separated) are added to the file's channels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
import yaml

RULES_ENV = "PIPESTATE_ALERT_RULES"
URLS_ENV = "PIPESTATE_ALERT_URLS"
SEVERITIES = ("info", "warning", "critical")
ENTITY_TYPES = ("PIPELINE", "STEP")
ERROR_TYPES = (
    "TRANSIENT",
    "PERMANENT",
    "TIMEOUT",
    "VALIDATION_ERROR",
    "DEPENDENCY_FAILURE",
    "UNKNOWN",
)
_NAME = attrs.validators.matches_re(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"'{attribute.name}' must be a finite number > 0 (got {value!r}).")


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"'{attribute.name}' must be between 0 and 1 (got {value!r}).")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0 (got {value!r}).")


def _entity_types(
    instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]
) -> None:
    bad = [v for v in value if v not in ENTITY_TYPES]
    if bad or not value:
        raise ValueError(
            f"'{attribute.name}' must list some of {ENTITY_TYPES} (got {list(value)!r})."
        )


_SEVERITY = attrs.validators.in_(SEVERITIES)
_ERROR_TYPE = attrs.validators.optional(attrs.validators.in_(ERROR_TYPES))


@attrs.frozen(kw_only=True)
class StuckRule:
    """A pipeline or step RUNNING longer than running_for_minutes: hung or orphaned."""

    name: str = attrs.field(validator=_NAME)
    kind: str = attrs.field(default="stuck", init=False)
    severity: str = attrs.field(default="warning", validator=_SEVERITY)
    running_for_minutes: float = attrs.field(default=60.0, validator=_positive)
    entity_types: tuple[str, ...] = attrs.field(default=ENTITY_TYPES, validator=_entity_types)
    lookback_days: int = attrs.field(default=7, validator=_non_negative)


@attrs.frozen(kw_only=True)
class FailureRateRule:
    """Pipeline failures of one error type (optionally one pipeline) above a share of outcomes."""

    name: str = attrs.field(validator=_NAME)
    kind: str = attrs.field(default="failure_rate", init=False)
    severity: str = attrs.field(default="warning", validator=_SEVERITY)
    error_type: str | None = attrs.field(default=None, validator=_ERROR_TYPE)
    pipeline: str | None = None
    window_minutes: float = attrs.field(default=60.0, validator=_positive)
    threshold: float = attrs.field(default=0.5, validator=_fraction)
    min_count: int = attrs.field(default=3, validator=_non_negative)


@attrs.frozen(kw_only=True)
class RetriesExhaustedRule:
    """A step FAILED with a retryable error (TRANSIENT, TIMEOUT) after at least min_retries."""

    name: str = attrs.field(validator=_NAME)
    kind: str = attrs.field(default="retries_exhausted", init=False)
    severity: str = attrs.field(default="warning", validator=_SEVERITY)
    window_minutes: float = attrs.field(default=60.0, validator=_positive)
    min_retries: int = attrs.field(default=1, validator=_non_negative)


@attrs.frozen(kw_only=True)
class PermanentFailureRule:
    """A pipeline FAILED with a PERMANENT error: someone has to fix something."""

    name: str = attrs.field(validator=_NAME)
    kind: str = attrs.field(default="permanent_failure", init=False)
    severity: str = attrs.field(default="critical", validator=_SEVERITY)
    window_minutes: float = attrs.field(default=1440.0, validator=_positive)
    error_type: str = attrs.field(default="PERMANENT", validator=attrs.validators.in_(ERROR_TYPES))


Rule = StuckRule | FailureRateRule | RetriesExhaustedRule | PermanentFailureRule
RULE_KINDS: Mapping[str, type[Any]] = {
    "stuck": StuckRule,
    "failure_rate": FailureRateRule,
    "retries_exhausted": RetriesExhaustedRule,
    "permanent_failure": PermanentFailureRule,
}


@attrs.frozen(kw_only=True)
class AlertConfig:
    """Rules, channels and the reminder interval of one watcher."""

    rules: tuple[Rule, ...]
    channels: tuple[str, ...] = ("log",)
    remind_after_minutes: float = attrs.field(default=60.0, validator=_positive)
    limit: int = attrs.field(default=500, validator=_non_negative)


DEFAULT_CONFIG = AlertConfig(
    rules=(
        StuckRule(name="stuck"),
        FailureRateRule(name="failure-rate"),
        RetriesExhaustedRule(name="retries-exhausted"),
        PermanentFailureRule(name="permanent-failure"),
    )
)


class RulesError(ValueError):
    """A rules file is invalid; the message names the file, the rule and the field."""


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def strict(kind: type, accept: tuple[type, ...]) -> Any:
        def hook(value: Any, _: Any) -> Any:
            if (isinstance(value, bool) and bool not in accept) or not isinstance(value, accept):
                raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
            return kind(value)

        return hook

    conv.register_structure_hook(str, strict(str, (str,)))
    conv.register_structure_hook(int, strict(int, (int,)))
    conv.register_structure_hook(float, strict(float, (int, float)))
    return conv


_CONVERTER = _converter()


def _say(exc: BaseException, typ: type | None) -> str:
    """Our validators and hooks already write sentences; cattrs' own wording for the rest."""
    if isinstance(exc, (ValueError, TypeError)) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, typ)


def _structure(raw: Any, cls: type[Any], where: str) -> Any:
    try:
        return _CONVERTER.structure(raw, cls)
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            details = "; ".join(cattrs.transform_error(exc, path=where, format_exception=_say))
        else:
            details = f"{where}: {exc}"
        raise RulesError(details) from None


def parse_config(data: Any, *, source: str = "rules") -> AlertConfig:
    """Build an AlertConfig from parsed YAML, raising RulesError naming what is wrong."""
    if data is None:
        return DEFAULT_CONFIG
    if not isinstance(data, Mapping):
        raise RulesError(f"{source}: expected a mapping at the top (got {type(data).__name__}).")
    unknown = sorted(set(data) - {"rules", "channels", "remind_after_minutes", "limit"})
    if unknown:
        raise RulesError(
            f"{source}: unknown key(s) {unknown} "
            "(allowed: rules, channels, remind_after_minutes, limit)."
        )
    raw_rules = data.get("rules")
    if raw_rules is None:
        rules = DEFAULT_CONFIG.rules
    elif not isinstance(raw_rules, list):
        raise RulesError(f"{source}: 'rules' must be a list (got {type(raw_rules).__name__}).")
    else:
        rules = tuple(_rule(raw, f"{source}: $.rules[{i}]") for i, raw in enumerate(raw_rules))
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RulesError(f"{source}: rule names must be unique (repeated: {duplicates}).")
    channels = data.get("channels", ["log"])
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        raise RulesError(f"{source}: 'channels' must be a list of Apprise URLs or 'log'.")
    rest = {k: data[k] for k in ("remind_after_minutes", "limit") if k in data}
    tail = _structure(rest, _Tail, f"{source}: $")
    return AlertConfig(rules=rules, channels=tuple(channels), **attrs.asdict(tail))


@attrs.frozen(kw_only=True)
class _Tail:
    remind_after_minutes: float = attrs.field(default=60.0, validator=_positive)
    limit: int = attrs.field(default=500, validator=_non_negative)


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise RulesError(f"{where}: expected a mapping (got {type(raw).__name__}).")
    kind = raw.get("kind")
    if kind not in RULE_KINDS:
        raise RulesError(f"{where}.kind: expected one of {sorted(RULE_KINDS)} (got {kind!r}).")
    fields = {k: v for k, v in raw.items() if k != "kind"}
    rule: Rule = _structure(fields, RULE_KINDS[str(kind)], where)
    return rule


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> AlertConfig:
    """Load the rules file (argument, else $PIPESTATE_ALERT_RULES, else defaults) plus env URLs."""
    env = os.environ if environ is None else environ
    chosen = path or env.get(RULES_ENV) or None
    if chosen is None:
        config = DEFAULT_CONFIG
    else:
        file = Path(chosen)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError(f"{file}: cannot read the rules file ({exc.strerror}).") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RulesError(f"{file}: not valid YAML ({str(exc).splitlines()[0]}).") from None
        config = parse_config(data, source=str(file))
    extra = [u for u in env.get(URLS_ENV, "").replace(",", " ").split() if u]
    if extra:
        config = attrs.evolve(config, channels=(*config.channels, *extra))
    return config

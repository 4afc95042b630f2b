"""Strict structuring and validation of pipeline configs into readable one-line errors."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from classifier.errors import ValidationError
from executor._yaml import MarkedYAMLError, YAMLError, YamlGuardError, load_guarded
from executor.config import IDENTIFIER_RE, PipelineConfig, RetryDefaults, StepConfig
from executor.dag import find_cycle
from executor.params import ParamSpec, check_schema

if TYPE_CHECKING:
    import cattrs

MAX_DEPTH = 50
MAX_NODES = 100_000
# Events are cheap to count and bound the work done before any object is built.
MAX_EVENTS = 8 * MAX_NODES
MAX_REPORTED = 3


class _TypeMismatch(TypeError):
    """A value of the wrong type; carries the expectation and the value for the message."""

    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"expected {expected}, got {describe(value)}")


class _ShapeError(Exception):
    """The YAML document is too deep or expands to too many nodes."""


def describe(value: object) -> str:
    """Render a value for an error message: its YAML-ish type and a short repr."""
    names = {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}
    kind = names.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return kind
    text = repr(value)
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"


def _strict(kind: type, expected: str, accept: tuple[type, ...]) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and bool not in accept:
            raise _TypeMismatch(expected, value)
        if not isinstance(value, accept):
            raise _TypeMismatch(expected, value)
        return kind(value)

    return hook


@functools.cache
def converter() -> cattrs.Converter:
    """The strict cattrs converter for configs (built on first use: cattrs is slow to import)."""
    import cattrs
    from cattrs.errors import IterableValidationError, IterableValidationNote

    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, "a string", (str,)))
    conv.register_structure_hook(int, _strict(int, "an integer", (int,)))
    conv.register_structure_hook(float, _strict(float, "a number", (int, float)))
    conv.register_structure_hook(bool, _strict(bool, "a boolean", (bool,)))

    def mapping_hook(value: Any, _: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _TypeMismatch("a mapping", value)
        for key in value:
            if not isinstance(key, str):
                raise _TypeMismatch("string keys", key)
        return dict(value)

    def tuple_hook(elem: type) -> Callable[[Any, Any], tuple[Any, ...]]:
        def hook(value: Any, typ: Any) -> tuple[Any, ...]:
            # A bare string is iterable; refuse it instead of splitting it into characters.
            if not isinstance(value, (list, tuple)):
                raise _TypeMismatch("a list", value)
            out: list[Any] = []
            errors: list[Exception] = []
            for i, item in enumerate(value):
                try:
                    out.append(conv.structure(item, elem))
                except Exception as exc:
                    exc.add_note(IterableValidationNote(f"@ index {i}", i, elem))
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"While structuring {typ!r}", errors, typ)
            return tuple(out)

        return hook

    # Generic aliases cannot go through singledispatch: match them with predicates.
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], mapping_hook)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], tuple_hook(str))
    steps_type = tuple[StepConfig, ...]
    conv.register_structure_hook_func(lambda t: t == steps_type, tuple_hook(StepConfig))

    def params_hook(value: Any, _: Any) -> dict[str, ParamSpec]:
        raw = mapping_hook(value, _)
        out: dict[str, ParamSpec] = {}
        errors: list[Exception] = []
        for key, item in raw.items():
            try:
                if not isinstance(item, Mapping):
                    raise _TypeMismatch("a mapping like {type: date, required: true}", item)
                out[key] = conv.structure(item, ParamSpec)
            except Exception as exc:
                exc.add_note(IterableValidationNote(f"@ .{key}", key, ParamSpec))
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring params", errors, dict)
        return out

    conv.register_structure_hook_func(lambda t: t == dict[str, ParamSpec], params_hook)
    conv.register_structure_hook(
        ParamSpec,
        cattrs.gen.make_dict_structure_fn(ParamSpec, conv, _cattrs_forbid_extra_keys=True),
    )
    conv.register_structure_hook(
        PipelineConfig,
        cattrs.gen.make_dict_structure_fn(
            PipelineConfig,
            conv,
            _cattrs_forbid_extra_keys=True,
            source=cattrs.gen.override(omit=True),
        ),
    )
    return conv


def _format_exception(exc: BaseException, typ: type | None) -> str:
    import cattrs
    from cattrs.errors import ForbiddenExtraKeysError

    if isinstance(exc, _TypeMismatch):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = ", ".join(f.name for f in _fields(exc.cl))
        extra = ", ".join(repr(k) for k in sorted(map(str, exc.extra_fields)))
        return f"unknown key {extra} (allowed: {allowed})"
    if isinstance(exc, KeyError):
        return "required field missing"
    return cattrs.v.format_exception(exc, typ)


def _fields(cl: type) -> list[Any]:
    import attrs

    return [f for f in attrs.fields(cl) if f.name != "source"]


def _check_shape(obj: object) -> None:
    """Refuse documents nested too deeply or expanding (through aliases) to too many nodes."""
    budget = MAX_NODES
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack:
        cur, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise _ShapeError(f"document expands to more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise _ShapeError(f"document nested deeper than {MAX_DEPTH} levels")
        if isinstance(cur, dict):
            stack.extend((v, depth + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, depth + 1) for v in cur)


def _load_yaml(data: bytes, source: str) -> object:
    try:
        return load_guarded(data, max_depth=MAX_DEPTH, max_events=MAX_EVENTS)
    except YamlGuardError as exc:
        raise ValidationError(f"{source}: {exc}") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError(f"{source}: invalid YAML{where}: {exc.problem}") from None
    except (YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(f"{source}: invalid YAML: {type(exc).__name__}") from None
    except ValueError as exc:  # e.g. an integer longer than Python's int-to-str digit limit
        raise ValidationError(f"{source}: invalid YAML value: {str(exc)[:200]}") from None


def parse_config_bytes(data: bytes, *, source: str) -> PipelineConfig:
    """Parse YAML bytes into a validated PipelineConfig; every problem is a ValidationError."""
    doc = _load_yaml(data, source)
    try:
        _check_shape(doc)
    except _ShapeError as exc:
        raise ValidationError(f"{source}: {exc}") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{source}: expected a mapping at the top level, got {describe(doc)}")
    from executor._fast_structure import structure

    config = structure(doc)  # a well-formed config, without importing cattrs
    if config is None:
        config = _structure_with_cattrs(doc, source)
    config = _with_source(config, source)
    validate_config(config)
    return config


def _structure_with_cattrs(doc: dict[Any, Any], source: str) -> PipelineConfig:
    """Structure through cattrs, turning its errors into one readable ValidationError."""
    import cattrs
    from cattrs.errors import ClassValidationError, IterableValidationError

    try:
        config: PipelineConfig = converter().structure(doc, PipelineConfig)
    except (ClassValidationError, IterableValidationError) as exc:
        problems = cattrs.transform_error(exc, "", _format_exception)
        raise ValidationError(_join(source, problems)) from None
    except _TypeMismatch as exc:
        raise ValidationError(f"{source}: {exc}") from None
    return config


def _with_source(config: PipelineConfig, source: str) -> PipelineConfig:
    import attrs

    return attrs.evolve(config, source=source)


def _join(source: str, problems: list[str]) -> str:
    parts = []
    for problem in problems[:MAX_REPORTED]:
        msg, _, path = problem.rpartition(" @ ")
        path = path.lstrip(".") or "(top level)"
        parts.append(f"{path}: {msg}")
    more = len(problems) - MAX_REPORTED
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    return f"{source}: {'; '.join(parts)}{suffix}"


def validate_config(config: PipelineConfig) -> None:
    """Check values, identifiers, processors and the step graph; raise ValidationError."""
    from executor.processors import (
        ConfigProblem,
        known_processors,
        unknown_processor_message,
    )

    source = config.source or f"pipeline {config.pipeline_id!r}"
    problems: list[str] = []

    def check(ok: bool, path: str, expected: str, value: object) -> None:
        if not ok:
            problems.append(f"{path}: expected {expected}, got {describe(value)}")

    def positive(value: float | None) -> bool:
        return value is not None and math.isfinite(value) and value > 0

    check(_ident(config.pipeline_id), "pipeline_id", _IDENT_HELP, config.pipeline_id)
    check(
        positive(config.timeout_minutes), "timeout_minutes", "a number > 0", config.timeout_minutes
    )
    check(config.concurrency >= 1, "concurrency", "an integer >= 1", config.concurrency)
    _check_retry(config.retry, check)
    if not config.steps:
        problems.append("steps: expected at least one step, got an empty list")
    seen: dict[str, int] = {}
    registry = known_processors()
    for i, step in enumerate(config.steps):
        at = f"steps[{i}]"
        check(_ident(step.step_id), f"{at}.step_id", _IDENT_HELP, step.step_id)
        if step.step_id in seen:
            first = seen[step.step_id]
            problems.append(f"{at}.step_id: duplicate {step.step_id!r} (also steps[{first}])")
        seen.setdefault(step.step_id, i)
        spec = registry.get(step.processor)
        if spec is None:
            unknown = unknown_processor_message(step.processor, registry)
            problems.append(f"{at}.processor: {unknown}")
        elif spec.check_config is not None:
            try:
                spec.check_config(step.config)
            except ConfigProblem as exc:
                where = f"{at}.config.{exc.key}" if exc.key else f"{at}.config"
                problems.append(f"{where}: {exc.message}")
            except (ValueError, TypeError) as exc:
                problems.append(f"{at}.config: {exc}")
        if step.timeout_minutes is not None:
            check(
                positive(step.timeout_minutes),
                f"{at}.timeout_minutes",
                "a number > 0",
                step.timeout_minutes,
            )
        if step.max_retries is not None:
            check(step.max_retries >= 0, f"{at}.max_retries", "an integer >= 0", step.max_retries)
    problems.extend(check_schema(config.params))
    ids = {s.step_id for s in config.steps}
    for i, step in enumerate(config.steps):
        for j, dep in enumerate(step.depends_on):
            if dep not in ids:
                problems.append(f"steps[{i}].depends_on[{j}]: unknown step {dep!r}")
            elif dep == step.step_id:
                problems.append(f"steps[{i}].depends_on[{j}]: step {dep!r} depends on itself")
    if not problems:
        cycle = find_cycle({s.step_id: s.depends_on for s in config.steps})
        if cycle is not None:
            problems.append(
                f"steps: dependency cycle {' -> '.join(cycle)} (each depends on the next)"
            )
    if problems:
        more = len(problems) - MAX_REPORTED
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        raise ValidationError(f"{source}: {'; '.join(problems[:MAX_REPORTED])}{suffix}")


_IDENT_HELP = "an identifier of letters, digits, '_', '-', '.' (max 128, not starting with - or .)"


def _ident(value: str) -> bool:
    return bool(IDENTIFIER_RE.match(value))


def _check_retry(retry: RetryDefaults, check: Callable[[bool, str, str, object], None]) -> None:
    def finite(value: float) -> bool:
        return math.isfinite(value)

    check(retry.max_retries >= 0, "retry.max_retries", "an integer >= 0", retry.max_retries)
    check(
        finite(retry.base_delay_seconds) and retry.base_delay_seconds >= 0,
        "retry.base_delay_seconds",
        "a number >= 0",
        retry.base_delay_seconds,
    )
    check(
        finite(retry.multiplier) and retry.multiplier >= 1,
        "retry.multiplier",
        "a number >= 1",
        retry.multiplier,
    )
    check(
        finite(retry.max_delay_seconds) and retry.max_delay_seconds >= retry.base_delay_seconds,
        "retry.max_delay_seconds",
        f"a number >= base_delay_seconds ({retry.base_delay_seconds})",
        retry.max_delay_seconds,
    )

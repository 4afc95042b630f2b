"""Run parameters: the optional `params:` schema of a pipeline and the checks of a run's values.

A pipeline may declare its parameters:

    params:
      date: {type: date, required: true}
      limit: {type: integer, default: 100}

Values arrive as JSON (the HTTP API) or as strings (`pipestate run --param date=2025-12-01`);
a string is converted to the declared type. Without a `params:` block every parameter is passed
through unchecked; with one, a missing required parameter, a value of the wrong type and an
undeclared parameter are each refused with one error naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from classifier.errors import ValidationError

PARAM_TYPES = ("string", "integer", "number", "boolean", "date")
# Names become SQL parameter names ($date) and metadata keys: keep them identifiers.
PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_PARAMS = 64
MAX_PARAMS_BYTES = 16 * 1024
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@attrs.frozen(kw_only=True)
class ParamSpec:
    """One declared run parameter: its type, whether it is required, its default."""

    type: str = "string"
    required: bool = False
    default: Any = None
    description: str | None = None


def _kind(value: object) -> str:
    names = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError


def _to_integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,18}", value.strip()):
        return int(value)
    raise TypeError


def _to_number(value: Any) -> float | int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise TypeError
        return value
    if isinstance(value, str):
        number = float(value.strip())
        if math.isfinite(number):
            return number
    raise TypeError


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError


def _to_date(value: Any) -> str:
    # Kept as ISO text: parameters are recorded in JSON metadata and bound as SQL parameters.
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return dt.date.fromisoformat(value.strip()).isoformat()
    raise TypeError


CONVERTERS: Mapping[str, Callable[[Any], Any]] = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "date": _to_date,
}
_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a finite number",
    "boolean": "a boolean (true/false)",
    "date": "a date YYYY-MM-DD",
}


def convert(name: str, spec: ParamSpec, value: Any) -> Any:
    """Convert one value to its declared type, or raise ValidationError naming the parameter."""
    try:
        return CONVERTERS[spec.type](value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"params.{name}: expected {_EXPECTED[spec.type]}, got {_kind(value)} {_shown(value)}"
        ) from None


def check_schema(params: Mapping[str, ParamSpec]) -> list[str]:
    """Problems of a pipeline's `params:` block, one line each (empty when it is fine)."""
    problems: list[str] = []
    if len(params) > MAX_PARAMS:
        problems.append(f"params: expected at most {MAX_PARAMS} parameters, got {len(params)}")
    for name, spec in params.items():
        if not PARAM_NAME_RE.match(name):
            problems.append(
                f"params.{name[:64]}: expected a name of letters, digits and '_' "
                "(not starting with a digit, max 64)"
            )
            continue
        if spec.type not in PARAM_TYPES:
            problems.append(
                f"params.{name}.type: expected one of {', '.join(PARAM_TYPES)}, "
                f"got {_shown(spec.type)}"
            )
            continue
        if spec.required and spec.default is not None:
            problems.append(f"params.{name}.default: a required parameter takes no default")
        elif spec.default is not None:
            try:
                convert(name, spec, spec.default)
            except ValidationError as exc:
                problems.append(str(exc).replace(f"params.{name}:", f"params.{name}.default:"))
    return problems


def check_values(values: Mapping[str, Any]) -> None:
    """Refuse a parameter mapping that is not a small JSON object with identifier keys."""
    if not isinstance(values, Mapping):
        raise ValidationError(f"params: expected a mapping, got {_kind(values)}")
    if len(values) > MAX_PARAMS:
        raise ValidationError(
            f"params: expected at most {MAX_PARAMS} parameters, got {len(values)}"
        )
    for key in values:
        if not isinstance(key, str) or not PARAM_NAME_RE.match(key):
            raise ValidationError(
                f"params: parameter names are letters, digits and '_' (max 64), got {_shown(key)}"
            )
    try:
        size = len(json.dumps(dict(values), allow_nan=False, default=_refuse))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"params: values must be plain JSON ({exc})") from None
    if size > MAX_PARAMS_BYTES:
        raise ValidationError(
            f"params: expected at most {MAX_PARAMS_BYTES} bytes of JSON, got {size}"
        )


def _refuse(value: object) -> Any:
    raise TypeError(f"{_kind(value)} is not JSON")


def resolve(schema: Mapping[str, ParamSpec], values: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Check run values against a schema (none: pass through); fill defaults; read-only result."""
    given = {} if values is None else values
    check_values(given)
    if not schema:
        return MappingProxyType(dict(given))
    extra = sorted(set(given) - set(schema))
    if extra:
        raise ValidationError(
            f"params.{extra[0]}: unknown parameter (declared: {', '.join(sorted(schema))})"
        )
    out: dict[str, Any] = {}
    for name, spec in schema.items():
        if name in given and given[name] is not None:
            out[name] = convert(name, spec, given[name])
        elif spec.required:
            raise ValidationError(
                f"params.{name}: required parameter missing (expected {_EXPECTED[spec.type]})"
            )
        elif spec.default is not None:
            out[name] = convert(name, spec, spec.default)
    return MappingProxyType(out)


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Turn ["date=2025-12-01", ...] into a dict; ValueError naming a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param expects NAME=VALUE (got {item!r})")
        out[key.strip()] = value
    return out

"""Turn arbitrary additional_context values into redacted, JSON-serialisable data."""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from typing import Any

from classifier.redact import redact

MAX_DEPTH = 6
MAX_ITEMS = 200
MAX_STRING = 4096


def json_safe(value: object, depth: int = 0) -> Any:
    """A JSON-ready copy of value: containers bounded, strings redacted, the rest stringified."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return json_safe(value.value, depth)
    if isinstance(value, int):
        return value if abs(value) < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return redact(value[:MAX_STRING])
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value[:MAX_STRING]).decode("utf-8", errors="replace"))
    if depth >= MAX_DEPTH:
        return _safe_repr(value)
    if isinstance(value, Mapping):
        return {_key(k): json_safe(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)[:MAX_ITEMS]
        if isinstance(value, set | frozenset):
            items.sort(key=repr)
        return [json_safe(item, depth + 1) for item in items]
    return _safe_repr(value)


def _key(key: object) -> str:
    """JSON object keys must be strings; keys are redacted like values."""
    return key if isinstance(key, str) else _safe_repr(key)


def _safe_repr(value: object) -> str:
    """str() for unknown objects, redacted, surviving a raising __str__."""
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    return redact(text[:MAX_STRING]) if isinstance(text, str) else type(value).__name__

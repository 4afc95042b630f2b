"""What a processor returned, as the metadata of its step's COMPLETED transition.

The whole mapping is recorded (the state machine then scrubs secrets and bounds every string, as
for any metadata); a non-mapping value is recorded under "result". Bounds keep one chatty
processor from bloating the audit table: at most RESULT_KEYS keys, and a result whose JSON is
longer than RESULT_JSON_CHARS keeps only its small scalar values plus a note of what was cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statemachine.records import dumps_metadata

RESULT_KEYS = 64
RESULT_JSON_CHARS = 16_384
# A scalar kept when a result is too large: its JSON must fit this many characters.
_SMALL_VALUE_CHARS = 256


def _small(value: Any) -> bool:
    return value is None or (
        isinstance(value, bool | int | float | str)
        and len(dumps_metadata({"v": value})) <= _SMALL_VALUE_CHARS
    )


def result_metadata(result: object) -> dict[str, Any]:
    """The metadata recording `result` ({} for None), bounded in keys and JSON size."""
    if result is None:
        return {}
    items: dict[str, Any] = (
        {str(key): value for key, value in result.items()}
        if isinstance(result, Mapping)
        else {"result": result}
    )
    meta = dict(list(items.items())[:RESULT_KEYS])
    if len(items) > RESULT_KEYS:
        meta["result_keys_omitted"] = len(items) - RESULT_KEYS
    size = len(dumps_metadata(meta))
    if size <= RESULT_JSON_CHARS:
        return meta
    kept = {
        key: value
        for key, value in meta.items()
        if _small(value) and len(key) <= _SMALL_VALUE_CHARS
    }
    dropped = [key[:_SMALL_VALUE_CHARS] for key in sorted(set(meta) - set(kept))]
    return {**kept, "result_truncated": True, "result_json_chars": size, "result_omitted": dropped}

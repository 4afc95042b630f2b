"""Sorted JSON text of plain values through the C encoder alone: the writer's metadata column.

json.JSONEncoder.encode() builds a new C encoder (and a Python closure) on every call, about
half of the ~1.6 us it takes for a two-key metadata dict; the writer process encodes one per
row. The encoder here is built once, with the settings of dumps_metadata (sorted keys,
non-ASCII kept, ", " and ": "), and checked against json at import: where the C module is
missing or its output differs, plain_json is None and callers use json as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_SAMPLE = {"b": [1, 2.5, None, True, "é\n"], "a": {"z": {}, "y": []}}


def _build() -> Callable[[Any], str] | None:
    """The fast encoder, or None where it would not give json.dumps's text."""
    try:
        from _json import encode_basestring, make_encoder

        # markers=None: no cycle check (a cycle ends in RecursionError, which callers treat as
        # any other refusal); allow_nan=False: NaN and infinities raise instead of writing
        # the bare NaN text that SQLite's json_extract and BigQuery refuse.
        encoder = make_encoder(
            None,
            None,  # type: ignore[arg-type]  # no default: a non-JSON value raises TypeError
            encode_basestring,
            None,
            ": ",
            ", ",
            True,
            False,
            False,
        )

        def plain(value: Any) -> str:
            """json.dumps(value, sort_keys=True, ensure_ascii=False) of plain JSON values."""
            return "".join(encoder(value, 0))

        expected = json.dumps(_SAMPLE, sort_keys=True, ensure_ascii=False)
        if plain(_SAMPLE) != expected:
            return None
    except Exception:  # another Python's private _json: use json's public API
        return None
    return plain


# plain_json(value): raises (TypeError, ValueError, RecursionError) on anything not plain JSON
# or not finite; None when this interpreter has no usable C encoder.
plain_json = _build()

"""Column-wise conversion of a batch for SQLite (RowPreparer's fast route), and metadata JSON.

Each converter takes one column of a batch (a tuple, from zip) and returns its insert
parameters, the same ones the row route's converters give value by value, with the loops in C
(map, set, zip). A value the row route would treat differently (not the usual type, a time
without a fraction, text not already canonical) raises _Unusual: the whole batch then takes
the row route, which also names any bad row.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import operator
from collections.abc import Callable, Sequence
from typing import Any

from persistence._json_text import plain_json
from statemachine.records import dumps_metadata

CANONICAL_LENGTH = 32
# Compact-enough, sorted JSON like dumps_metadata, but built once: json.dumps() with keyword
# arguments constructs a new encoder on every call. No `default`: a non-JSON value raises and
# takes the dumps_metadata path, so the text is always what dumps_metadata would produce.
# (Used where persistence._json_text has no C encoder.)
_METADATA_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def metadata_json(value: Any) -> str:
    """dumps_metadata(value), with fast paths for the common cases (empty, plain JSON)."""
    if type(value) is not dict:
        return dumps_metadata(value)
    if not value:
        return "{}"
    if plain_json is not None:
        try:
            return plain_json(value)  # lone surrogates: see below
        except Exception:  # non-JSON values, cycles, NaN: dumps_metadata renders them
            return dumps_metadata(value)
    try:
        text = _METADATA_ENCODER.encode(value)
    except Exception:  # non-JSON values, cycles: dumps_metadata renders them as strings
        return dumps_metadata(value)
    if "NaN" in text or "Infinity" in text:
        return dumps_metadata(value)
    # A lone surrogate stays here; the store repairs it as dumps_metadata would (U+FFFD).
    return text


def metadata_texts(values: Sequence[Any]) -> list[str]:
    """metadata_json of each value; a column of dicts is encoded in one call when it can be.

    Encoding the column as one JSON array and cutting it at the "}, {" between its dicts costs
    ~0.6 us a dict against ~0.8 us a call (the C encoder's fixed cost per call: argument
    parsing, its accumulator; the 100-step chain's executor metadata). The cut is exact only
    when "}, {" occurs nowhere else (a nested list of dicts, a string holding it): then there
    are more than len - 1 of them and every value is encoded on its own, as before. So is a
    column holding an empty dict: metadata_json answers "{}" without the encoder, 3x faster.
    """
    if plain_json is not None and values and all(values) and set(map(type, values)) == {dict}:
        try:
            text = plain_json(values)  # a tuple or list: a JSON array
        except Exception:  # not plain JSON somewhere: metadata_json says how, value by value
            return list(map(metadata_json, values))
        if text.count(_BETWEEN) == len(values) - 1:
            return list(map(_BRACED, text[2:-2].split(_BETWEEN)))
    return list(map(metadata_json, values))


_BETWEEN = "}, {"  # between two dicts of a JSON array (the encoder's ", " item separator)
_BRACED = "{%s}".__mod__
_ISO_TIMESTAMP = dt.datetime.isoformat
_ISO_DATE = dt.date.isoformat
_UTC_SUFFIX = "+00:00"


class _Unusual(Exception):
    """A column holds a value the column-wise route does not convert: take the row route."""


def _timestamp_column(values: tuple[Any, ...]) -> list[str]:
    """record_timestamp of a column of UTC datetimes with microseconds, in C loops."""
    if set(map(type, values)) != {dt.datetime}:
        raise _Unusual
    texts = list(map(_ISO_TIMESTAMP, values))
    # Canonical = with a fraction (32 characters) and at offset zero.
    if set(map(len, texts)) != {CANONICAL_LENGTH} or not all(
        map(str.endswith, texts, itertools.repeat(_UTC_SUFFIX))
    ):
        raise _Unusual
    return texts


def _date_column(values: tuple[Any, ...]) -> list[str]:
    """record_date of a column of dates."""
    if set(map(type, values)) != {dt.date}:
        raise _Unusual
    return list(map(_ISO_DATE, values))


def _json_column(values: tuple[Any, ...]) -> list[str]:
    """metadata_json of each value."""
    return metadata_texts(values)


def _present(values: tuple[Any, ...]) -> tuple[Any, ...] | list[Any]:
    """The values that are not None (a nullable column's None stays None in either route)."""
    return [v for v in values if v is not None] if None in values else values


def _texts(values: tuple[Any, ...] | list[Any], length: int) -> tuple[Any, ...] | list[Any]:
    """The values, if all are str of `length` characters (else _Unusual)."""
    if values and (set(map(type, values)) != {str} or set(map(len, values)) != {length}):
        raise _Unusual
    return values


def _timestamp_text_column(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """canonical_timestamp of a column already in canonical text (derive_run_rows's rows)."""
    texts = _texts(_present(values), CANONICAL_LENGTH)
    if set(map(_AT_19, texts)) - {"."} or not all(
        map(str.endswith, texts, itertools.repeat(_UTC_SUFFIX))
    ):
        raise _Unusual
    return values


def _date_text_column(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """canonical_date of a column already in YYYY-MM-DD text."""
    texts = _texts(_present(values), 10)
    if set(map(_AT_4, texts)) - {"-"} or set(map(_AT_7, texts)) - {"-"}:
        raise _Unusual
    return values


def _json_text_column(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """json_text of a column already in text (JSON columns take a str as it is)."""
    if set(map(type, _present(values))) - {str}:
        raise _Unusual
    return values


_AT_4, _AT_7, _AT_19 = operator.itemgetter(4), operator.itemgetter(7), operator.itemgetter(19)
# Column converters of record values (datetime, date, dict) and of mapping rows (text).
COLUMN_CONVERTERS: dict[str, Callable[[tuple[Any, ...]], Sequence[Any]]] = {
    "TIMESTAMP": _timestamp_column,
    "DATE": _date_column,
    "JSON": _json_column,
}
TEXT_COLUMN_CONVERTERS: dict[str, Callable[[tuple[Any, ...]], Sequence[Any]]] = {
    "TIMESTAMP": _timestamp_text_column,
    "DATE": _date_text_column,
    "JSON": _json_text_column,
}

"""The writer process's request frame: a group's parts as compact values, marshal or pickle.

The parent (persistence/_writer_process.py) encodes on the event loop, so the format is chosen
for the parent's cost: a TransitionRecord travels as (its other 17 fields, transition_time as
integer microseconds since the epoch, transition_date as its proordinal), which marshal can
write. Pickling the datetime and the date was most of the encode (~3.3 -> ~2.0 us per record,
same-run micro-benchmark, load ~5); marshal also loads faster. A group marshal refuses (metadata
holding a value that is not a plain str, int, float, bool, None, list, tuple or dict: a
datetime, a set, an enum member) is pickled instead; a leading byte says which.

The writer child (persistence/_writer_child.py) turns the records back into value tuples in
RECORD_FIELDS order (column by column, in C loops), with a UTC datetime and a date: the same
values as the record's, exactly (microseconds are integers; a zero-offset tzinfo other than
UTC comes back as UTC, whose text is the same).
"""

from __future__ import annotations

import datetime as dt
import itertools
import marshal
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from persistence.stores.base import RowError, WriteResult
from statemachine.records import RECORD_FIELDS, TransitionRecord

_TIME = RECORD_FIELDS.index("transition_time")
_DATE = RECORD_FIELDS.index("transition_date")
if _DATE != _TIME + 1:  # expand_records inserts the two columns side by side
    raise TypeError(f"transition_date must follow transition_time in RECORD_FIELDS {RECORD_FIELDS}")
# The record's fields that travel as they are, in RECORD_FIELDS order.
WIRE_FIELDS = tuple(
    name for name in RECORD_FIELDS if name not in ("transition_time", "transition_date")
)
_wire_values = operator.attrgetter(*WIRE_FIELDS)
# The same fields of a record already turned into its values (RECORD_FIELDS order).
_wire_items = operator.itemgetter(*(RECORD_FIELDS.index(name) for name in WIRE_FIELDS))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_MARSHAL, _PICKLE = b"M", b"P"
_OK_REPLY = b"K"  # a pickled reply starts with its protocol's b"\x80"
Encoded = list[tuple[str, list[Any], list[int]]]


def wire_record(record: TransitionRecord) -> tuple[tuple[Any, ...], int, int]:
    """A record as its wire tuple (see the module docstring), which encode_parts sends as is.

    The logger queues this for a writer process (MetadataLogger.emit): the group's encode then
    has nothing left to do per record but marshal it (~0.25 us less per record, and no
    intermediate tuples for the garbage collector).
    """
    return (
        _wire_values(record),
        (record.transition_time - _EPOCH) // _MICROSECOND,
        record.transition_date.toordinal(),
    )


def encode_parts(
    parts: Sequence[tuple[str, Sequence[Any]]],
) -> tuple[Encoded, list[list[RowError]]]:
    """Parts as plain values: records as wire tuples (their indexes noted), rows as dicts.

    A record may come as a TransitionRecord, as its wire tuple (wire_record) or as its values in
    RECORD_FIELDS order (a plain tuple). An item that is neither a record nor a mapping is
    rejected here, as to_rows() would.
    """
    encoded: Encoded = []
    rejected: list[list[RowError]] = []
    epoch, microsecond = _EPOCH, _MICROSECOND
    for table, items in parts:
        values: list[Any] = []
        records: list[int] = []
        bad: list[RowError] = []
        for item in items:
            if type(item) is tuple and len(item) == 3:  # a wire tuple (wire_record): as is
                records.append(len(values))
                values.append(item)
            elif type(item) is TransitionRecord:
                records.append(len(values))
                values.append(
                    (
                        _wire_values(item),
                        (item.transition_time - epoch) // microsecond,
                        item.transition_date.toordinal(),
                    )
                )
            elif type(item) is tuple and len(item) == len(RECORD_FIELDS):
                # A record the logger queued as its values (RECORD_FIELDS order).
                records.append(len(values))
                values.append(
                    (
                        _wire_items(item),
                        (item[_TIME] - epoch) // microsecond,
                        item[_DATE].toordinal(),
                    )
                )
            elif isinstance(item, Mapping):
                values.append(dict(item))
            else:
                bad.append(RowError(f"<{type(item).__name__}>", "not a TransitionRecord or row"))
        encoded.append((table, values, records))
        rejected.append(bad)
    return encoded, rejected


def dump_group(encoded: Encoded, derive: bool, group_id: int | None = None) -> bytes:
    """The frame's payload: marshal where it can write every value, else pickle.

    group_id: a streamed group's number (persistence/_writer_stream.py), in its data frames and
    its last frame alike; None for a group sent in one frame.
    """
    group = (encoded, derive) if group_id is None else (encoded, derive, group_id)
    try:
        return _MARSHAL + marshal.dumps(group)
    except ValueError:  # a value marshal does not know (see the module docstring)
        import pickle  # rare: not loaded on a run that never needs it (cold start)

        return _PICKLE + pickle.dumps(group, pickle.HIGHEST_PROTOCOL)


def load_group(payload: bytes) -> tuple[Encoded, bool]:
    """The (encoded parts, derive) a payload of dump_group holds."""
    encoded, derive, _ = load_frame(payload)
    return encoded, derive


def ok_reply(parts: list[int], derived: list[tuple[str, int]]) -> bytes:
    """A streamed group's reply (persistence/_writer_stream.py): rows written per part, derived
    rows per table, none rejected. In marshal, not pickle: pickling the WriteResults cost the
    child ~15 us and unpickling the parent ~30 us, in the 100-step chain's tail (issue 12)."""
    return _OK_REPLY + marshal.dumps((parts, derived))


def load_reply(payload: bytes) -> Any:
    """A writer child's reply as the value it stands for (ok_reply's, or anything pickled)."""
    if payload[:1] == _OK_REPLY:
        parts, derived = marshal.loads(memoryview(payload)[1:])
        results = [WriteResult(count) for count in parts]
        return ("ok", (results, [(table, WriteResult(count)) for table, count in derived], 0))
    import pickle  # replies exist only with a writer child: a thread-writer run never loads it

    return pickle.loads(payload)


def load_frame(payload: bytes) -> tuple[Encoded, bool, int | None]:
    """The (encoded parts, derive, group id or None) a payload of dump_group holds."""
    kind, body = payload[:1], memoryview(payload)[1:]
    if kind == _MARSHAL:
        group = marshal.loads(body)
    elif kind == _PICKLE:
        import pickle

        group = pickle.loads(body)
    else:
        raise ValueError(f"writer frame: unknown encoding {bytes(kind)!r}, expected M or P")
    return group[0], group[1], group[2] if len(group) > 2 else None


def expand_records(
    values: list[Any], records: list[int], rebuild: Callable[[Sequence[Any]], Any] = tuple
) -> None:
    """Replace each wire tuple at `records` with rebuild(the record's values in RECORD_FIELDS
    order): the writer child's RecordValues, or a TransitionRecord.

    Column by column: the per-value work runs in C (zip, map), not in a Python loop per record.
    """
    if not records:
        return
    every = len(records) == len(values)  # indexes are distinct: then every item is a record
    wires = values if every else [values[i] for i in records]
    rests, stamps, ordinals = zip(*wires, strict=True)
    times = map(
        operator.add,
        itertools.repeat(_EPOCH),
        map(dt.timedelta, itertools.repeat(0), itertools.repeat(0), stamps),
    )
    columns: list[Any] = list(zip(*rests, strict=True))
    columns[_TIME:_TIME] = (tuple(times), tuple(map(dt.date.fromordinal, ordinals)))
    rebuilt = map(rebuild, zip(*columns, strict=True))
    if every:
        values[:] = rebuilt
    else:
        for index, item in zip(records, rebuilt, strict=True):
            values[index] = item

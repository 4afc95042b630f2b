"""A group of the logger's rows as the writer child gets it: value tuples, frames, streamed rows.

The parent's side of the frame (persistence/_frame.py encodes, persistence/_writer_child.py
reads): a record as its value tuple, a group encoded once into its frame (EncodedParts) and the
rows of a group sent ahead in data frames (Streamed, persistence/_writer_stream.py).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from persistence._frame import dump_group, expand_records, load_group
from persistence._frame import encode_parts as _encode_parts
from persistence._writer_child import _HEADER, _SIZE
from persistence._writer_stream import merged
from statemachine.records import RECORD_FIELDS, TransitionRecord

if TYPE_CHECKING:
    from persistence._writer_link import Link
    from persistence.stores.base import RowError

_record_values = operator.attrgetter(*RECORD_FIELDS)


def record_values(record: TransitionRecord) -> tuple[Any, ...]:
    """A record as its value tuple (RECORD_FIELDS order), which the frame encodes as the record.

    The logger queued this instead of the record for a pipelined store: the record object then
    dies in emit(), as under a NullSink, instead of living (and being promoted through the
    collector's generations) until its group is committed (benchmarks/executor.py's 1,000 x 10
    workload: young collections 251 -> 225, full ones 2 -> 1, the collector's CPU ~280 -> ~155
    ms per run). It now queues the record's wire tuple (persistence._frame.wire_record).
    """
    return _record_values(record)


def record_from_values(values: Sequence[Any]) -> TransitionRecord:
    """The record a value tuple was made from (record_values), checked like any record."""
    return TransitionRecord(**dict(zip(RECORD_FIELDS, values, strict=True)))


class EncodedParts(list[tuple[str, tuple[()]]]):
    """A group already encoded into its frame, to send (or resend) without its items.

    It reads as the parts' (table, ()) pairs, so a store can check the tables as for any
    group. The group committer encodes each group once, before its first send, and lets its
    items go (GroupCommitter._encode): until then a group's value tuples lived until the
    child's reply, hundreds of milliseconds in a burst, and every young and middle collection
    of the garbage collector walked them again (a value tuple holding the metadata dict is
    never untracked). A retry after the child died resends the frame.
    """

    def __init__(
        self,
        parts: Sequence[tuple[str, Sequence[Any]]],
        derive: bool,
        streamed: Streamed | None = None,
    ) -> None:
        frame, rejected = _encode_group(parts, derive, streamed.group_id if streamed else None)
        super().__init__((table, ()) for table, _ in parts)
        self.frame = frame
        self.rejected = rejected
        self.derive = derive
        # The group's rows sent ahead in data frames (persistence/_writer_stream.py), and the
        # child they went to: a send to any other child, or a resend, carries them again.
        self.streamed = bytes(streamed.frames) if streamed else b""
        self.streamed_to = streamed.link if streamed else None
        if streamed is not None and streamed.rejected:
            self.rejected[0] = [*streamed.rejected, *self.rejected[0]]

    def decoded(self) -> list[tuple[str, list[Any]]]:
        """The parts as sent: records as TransitionRecords, rows as dicts (for a drop count)."""
        encoded, _ = load_group(self.frame[_HEADER.size :])
        encoded = merged([load_group(p)[0] for p in split_frames(self.streamed)], encoded)
        parts = []
        for table, values, records in encoded:
            expand_records(values, records, record_from_values)
            parts.append((table, values))
        return parts


def _encode_group(
    parts: Sequence[tuple[str, Sequence[Any]]], derive: bool, group_id: int | None = None
) -> tuple[bytes, list[list[RowError]]]:
    """A group's frame (header + payload, persistence/_frame.py), and the items refused."""
    if type(parts) is EncodedParts:
        if parts.derive != derive:
            raise ValueError(f"group encoded with derive={parts.derive}, sent with {derive}")
        return parts.frame, parts.rejected
    encoded, rejected = _encode_parts(parts)
    payload = dump_group(encoded, derive, group_id)
    return _HEADER.pack(len(payload)) + payload, rejected


class Streamed:
    """Rows of a group sent ahead in data frames, while the group committer still gathers it."""

    __slots__ = ("derive", "frames", "group_id", "link", "rejected", "rows")

    def __init__(self, group_id: int, link: Link, derive: bool) -> None:
        self.group_id = group_id
        self.link = link  # the child that has them (a group streams to one child only)
        self.derive = derive
        self.frames = bytearray()  # the data frames as sent: a resend sends them again
        self.rows = 0  # items taken from the queue for them (refused ones included)
        self.rejected: list[RowError] = []  # items encode_parts refused

    def add(self, frame: bytes, rows: int, rejected: list[RowError]) -> None:
        """Note a data frame sent: its bytes, the items it took, the items refused."""
        self.frames += frame
        self.rows += rows
        self.rejected += rejected


def split_frames(frames: bytes) -> list[bytes]:
    """The payloads of concatenated frames (data frames kept for a resend)."""
    payloads = []
    offset = 0
    while offset < len(frames):
        (size,) = _HEADER.unpack_from(frames, offset)
        offset += _HEADER.size
        payloads.append(frames[offset : offset + (size & _SIZE)])
        offset += size & _SIZE
    return payloads

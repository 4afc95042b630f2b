"""The pipe between ExportProcess and its child: length-prefixed pickles of packed records.

A record crosses as one tuple of its fields (not an attrs object: about a quarter of the
pickling cost), and a batch as one pickle, made once for every exporter in the child.
"""

from __future__ import annotations

import json
import operator
import os
import pickle
import struct
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from statemachine.records import RECORD_FIELDS, TransitionRecord, trusted_record

if TYPE_CHECKING:
    from persistence.fanout import ExportSettings

# transition_date is derived from transition_time: not sent. The order is trusted_record's.
PACKED_FIELDS = tuple(f for f in RECORD_FIELDS if f != "transition_date")
pack = operator.attrgetter(*PACKED_FIELDS)
_HEADER = struct.Struct("!I")


def encode_frame(payload: Any) -> bytes:
    """One length-prefixed pickle."""
    data = pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def write_frame(stream: IO[bytes], payload: Any) -> None:
    """Write one length-prefixed pickle."""
    stream.write(encode_frame(payload))
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """Read one length-prefixed pickle; EOFError when the stream ended."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("stream closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("stream closed mid-frame")
    return pickle.loads(data)


def unpack(row: tuple[Any, ...]) -> TransitionRecord:
    """The TransitionRecord of a packed row (fields already checked when it was first built)."""
    return trusted_record(*row)


def child_command(
    kinds: Sequence[str], settings: ExportSettings, service_name: str | None
) -> tuple[list[str], dict[str, str]]:
    """The child's argv (its options as one JSON argument) and environment."""
    options = json.dumps(
        {
            "kinds": list(kinds),
            "service_name": service_name,
            "settings": {
                "queue_size": settings.queue_size,
                "batch_size": settings.batch_size,
                "interval_seconds": settings.interval_seconds,
                "stop_timeout_seconds": settings.stop_timeout_seconds,
            },
        }
    )
    # -P: the working directory is not put first on sys.path (a user's own "persistence"
    # folder there must not shadow ours).
    command = [sys.executable, "-P", "-m", "persistence._export_child", options]
    env = dict(os.environ)
    # The child imports what we import, from where we import it (a source checkout too).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return command, env

"""The writer process's side (persistence/_writer_process.py): frames in, commits, replies out.

Runs only in the forked child; the parent shares the frame header (_HEADER) and the control
frames (control_frame): "detach" ends a store's session (commit, close the file, reply), after
which the child waits, parked (persistence/_writer_pool.py), for "open" and a new store.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import struct
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from persistence._derive import DERIVING_STATES
from persistence._frame import expand_records
from persistence._writer_stream import StreamedCommits, error_reply, prepared_params
from persistence.stores._sqlite_rows import RecordValues, record_values
from persistence.stores.base import PIPELINE_RUNS, STATE_TRANSITIONS, STEP_LOGS
from statemachine.records import RECORD_FIELDS, TransitionRecord

_HEADER = struct.Struct("!I")
# A header with this bit set carries a control message (pickled), not a group of rows.
_CONTROL = 0x8000_0000
# A header with this bit set carries rows of a group still being gathered: no reply, no commit
# until the group's last frame (persistence/_writer_stream.py).
_DATA = 0x4000_0000
_SIZE = 0x3FFF_FFFF
_MAX_GROUPS_PER_COMMIT = 64
IDLE_COMMIT_SECONDS = 0.001  # see _serve
MAX_COMMIT_SECONDS = 0.25  # see _serve
_READ_SIZE = 1 << 20  # the request pipe's size (persistence._writer_link.grow_pipe)
_TO_STATE = RECORD_FIELDS.index("to_state")
_SETTERS = tuple(getattr(TransitionRecord, name).__set__ for name in RECORD_FIELDS)
_new = object.__new__


def _record(values: Sequence[Any]) -> TransitionRecord:
    """The record whose fields are `values` (in RECORD_FIELDS order), without re-validation."""
    record = _new(TransitionRecord)
    for setter, value in zip(_SETTERS, values, strict=True):
        setter(record, value)
    return record


def _decode_parts(
    encoded: list[tuple[str, list[Any], list[int]]], *, as_values: bool, derive: bool = True
) -> tuple[list[tuple[str, list[Any]]], list[TransitionRecord | RecordValues]]:
    """The parts with their records rebuilt, and the transition records to derive rows from.

    as_values (a store that inserts RecordValues, SQLite): records stay value tuples, named
    (RecordValues), and only a transition into one of DERIVING_STATES, the only ones that imply
    a run or step row (about half of a run's), is listed to derive from (derive=True), as its
    RecordValues: persistence._derive reads them by name as it reads a record.
    """
    parts = []
    deriving: list[TransitionRecord | RecordValues] = []
    rebuild: Callable[[Sequence[Any]], Any] = record_values if as_values else _record
    for table, values, records in encoded:
        expand_records(values, records, rebuild)
        if derive and table == STATE_TRANSITIONS:
            if as_values:
                deriving += [
                    item
                    for item in map(values.__getitem__, records)
                    if item[_TO_STATE] in DERIVING_STATES
                ]
            else:
                deriving += map(values.__getitem__, records)
        parts.append((table, values))
    return parts, deriving


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


class _Control(bytes):
    """A control frame's payload (see control_frame), told apart from a group's by its type."""


class _Data(bytes):
    """A data frame's payload (see data_frame): rows of a group whose last frame is to come."""


def data_frame(payload: bytes) -> bytes:
    """A group payload (persistence._frame.dump_group) as a data frame."""
    return _HEADER.pack(_DATA | len(payload)) + payload


def control_frame(message: tuple[Any, ...]) -> bytes:
    """A control message as a frame: ("detach",), or ("open", store factory)."""
    import pickle  # control frames exist only for a parked writer: a thread-writer run never

    payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(_CONTROL | len(payload)) + payload


class _FrameReader:
    """The child's end of the request pipe: whole frames, blocking or only what has arrived."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False
        # Reads land here first: os.read(fd, 1 MiB) allocates (mmap) and frees a MiB per call,
        # ~17 us for a group of a few KiB; a burst still drains the pipe in one call.
        self._chunk = bytearray(_READ_SIZE)
        self._chunk_view = memoryview(self._chunk)

    def _frame(self) -> bytes | None:
        if len(self.buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buffer)
        end = _HEADER.size + (size & _SIZE)
        if len(self.buffer) < end:
            return None
        kind = _Control if size & _CONTROL else _Data if size & _DATA else bytes
        frame = kind(self.buffer[_HEADER.size : end])
        del self.buffer[:end]
        return frame

    def ready(self) -> bool:
        """A whole frame is in the buffer (read from the pipe already)."""
        if len(self.buffer) < _HEADER.size:
            return False
        size: int = _HEADER.unpack_from(self.buffer)[0]
        return len(self.buffer) >= _HEADER.size + (size & _SIZE)

    def next(self, *, block: bool, wait: float = 0.0) -> bytes | None:
        """The next frame; None at end-of-file, or (block=False) when none has fully arrived
        within `wait` seconds."""
        while (frame := self._frame()) is None:
            if self.eof:
                return None
            if not block and not select.select([self.fd], [], [], wait)[0]:
                return None
            size = os.readv(self.fd, [self._chunk])
            if not size:
                self.eof = True
            self.buffer += self._chunk_view[:size]
        return frame


def _commit(store: Any, groups: list[tuple[Any, bool]]) -> list[Any]:
    """Commit groups that arrived together in one transaction; one reply per group.

    One commit (one fsync on the outbox) for all of them is what lets the child keep up with a
    parent that sends a group every millisecond. Derived rows are counted on the first reply
    (the parent counts them per table, not per group). A failure fails every group of the
    transaction; the parent retries each one.
    """
    if getattr(store, "write_prepared", None) is not None:
        done = _commit_prepared(store, groups)
        if done is not None:
            return done
    from persistence._group_write import derive_records, write_group

    derive = groups[0][1]
    parts: list[tuple[str, list[Any]]] = []
    deriving: list[TransitionRecord | RecordValues] = []
    as_values = getattr(store, "write_records", None) is not None
    for encoded, _ in groups:
        decoded, records = _decode_parts(encoded, as_values=as_values, derive=derive)
        parts += decoded
        deriving += records
    try:
        extra, failures = derive_records(deriving) if derive else ([], 0)
        written = write_group(store, [*parts, *extra])
    except Exception as error:
        return [error_reply(error)] * len(groups)
    return _ok_replies(groups, written, len(parts), extra, failures)


def _ok_replies(
    groups: list[tuple[Any, bool]],
    written: list[Any],
    own_parts: int,
    extra: list[tuple[str, list[Any]]],
    failures: int,
) -> list[Any]:
    """One reply per group: its own parts' results; the derived rows go with the first."""
    derived = [(table, r) for (table, _), r in zip(extra, written[own_parts:], strict=True)]
    replies: list[Any] = []
    offset = 0
    for encoded, _ in groups:
        own = written[offset : offset + len(encoded)]
        offset += len(encoded)
        replies.append(("ok", (own, derived, failures) if not replies else (own, [], 0)))
    return replies


def _commit_prepared(store: Any, groups: list[tuple[Any, bool]]) -> list[Any] | None:
    """_commit's usual case on SQLite: parameters straight from the wire tuples (_wire_rows).

    Only groups of transition records take it; None (nothing written, the frames untouched)
    sends the commit down _commit's general route, which rebuilds the records, derives the
    run and step rows (counting and logging a record it cannot derive from) and rejects bad
    items by id. The replies are the general route's, derive failures always 0.
    """
    try:
        parts, runs, steps = prepared_params([encoded for encoded, _ in groups], groups[0][1])
    except Exception:  # WireUnusual, or a value the general route handles (and names)
        return None
    extra = [(table, rows) for table, rows in ((PIPELINE_RUNS, runs), (STEP_LOGS, steps)) if rows]
    try:
        written = store.write_prepared([*parts, *extra])
    except Exception as error:
        return [error_reply(error)] * len(groups)
    return _ok_replies(groups, written, len(parts), extra, 0)


def yield_on_wakeup() -> None:
    """Run this process as SCHED_BATCH (Linux): woken by a group, it never preempts the parent.

    A pipe write wakes the reader "synchronously": when the other core is busy, the kernel puts
    the child on the parent's core, where it preempted the event loop for its whole commit (a
    write() of 20 us of CPU took 0.7-1.7 ms of wall time, seen in the 100-step chain). A batch
    task is not allowed to preempt on wakeup; it waits for a free core or the loop's next
    sleep. Rows already in the pipe are safe either way (a killed parent's are still committed).
    With a CPU hog on the other core, interleaved 4 x 12 pairs: chain overhead 113-128 % ->
    105-112 %, the run phase 6.4-7.2 -> 4.2-6.1 ms; no change on a quiet machine.
    """
    setter = getattr(os, "sched_setscheduler", None)
    if setter is not None:
        with contextlib.suppress(OSError):
            setter(0, os.SCHED_BATCH, os.sched_param(0))


def bind_none_directly() -> None:
    """Give sqlite3 an adapter for None, in this process only (the writer child is ours).

    sqlite3 binds int, float and str as they are but "adapts" every other value, None too:
    without an adapter registered for its type it looks for __adapt__ and __conform__, ~3,300
    instructions per NULL (callgrind), five or more per transition. A registered adapter is
    one dict hit and a C call ({}.get(None) is None, bound as NULL as before): ~1 us less
    per transition. Not done in the pipeline's process, whose sqlite3 adapters are the user's.
    """
    import sqlite3

    as_is: Callable[[None], None] = {}.get  # type: ignore[assignment]  # get(None) is None
    sqlite3.register_adapter(type(None), as_is)


def _child_main(
    factory: Callable[[], Any], requests: int, replies: int, idle_seconds: float | None = None
) -> None:
    """The child: commit what it reads, in arrival order, for one store after another.

    A "detach" (the parent's store closed, its writer parked) ends a store's session; the
    child then waits up to idle_seconds for an "open" with the next store's factory. It
    returns at end-of-file (the parent closed the pipe or died), after the idle timeout, or
    on anything but an "open" while parked.
    """
    # Everything inherited from the parent is frozen out of the cyclic GC: a collection that
    # walked the parent's heap would copy (copy-on-write) and scan every page of it.
    gc.freeze()
    yield_on_wakeup()
    bind_none_directly()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inbox = _FrameReader(requests)
    outbox: IO[bytes] | None = os.fdopen(replies, "wb")
    next_factory: Callable[[], Any] | None = factory
    while next_factory is not None:
        outbox, detached = _serve(next_factory, inbox, outbox)
        if not detached or outbox is None:  # end-of-file, or nobody to answer an open to
            return
        next_factory = _await_open(inbox, idle_seconds)


def _open_store(factory: Callable[[], Any]) -> Any:
    """The store of one session, tuned for this process and its file opened."""
    store = factory()
    tune = getattr(store, "tune_for_writer_child", None)
    if tune is not None:
        tune()
    prepare = getattr(store, "prepare_writes", None)
    if prepare is not None:
        # Open the file and check its tables now, while the parent starts its run, not
        # inside the first commit (~2 ms the parent's first flush would wait for). A failure
        # here is the first write's to report.
        with contextlib.suppress(Exception):
            prepare()
    warm = getattr(store, "warm_statements", None)
    if warm is not None:  # compiled now, while the parent's run starts (SQLiteStore says why)
        with contextlib.suppress(Exception):
            warm((STATE_TRANSITIONS, STEP_LOGS, PIPELINE_RUNS))
    warm_wal = getattr(store, "warm_wal", None)
    if warm_wal is not None:  # the WAL's header too (SQLiteStore.warm_wal)
        with contextlib.suppress(Exception):
            warm_wal()
    return store


def _serve(
    factory: Callable[[], Any], inbox: _FrameReader, outbox: IO[bytes] | None
) -> tuple[IO[bytes] | None, bool]:
    """Commit groups for one store until end-of-file or a detach (True: answered, file closed).

    Rows go into the open transaction as their frames arrive (persistence/_writer_stream.py);
    the commit comes whenever nothing more is waiting, so the groups that arrived together
    share it (bounded by _MAX_GROUPS_PER_COMMIT) and an idle child commits what it has.
    """
    store = _open_store(factory)
    stream = StreamedCommits(store, _commit)
    detached = False
    oldest = 0.0  # when the oldest frame not committed yet arrived (stream.pending)
    try:
        while True:
            # Rows of a group not ended yet are committed once nothing more is waiting and
            # the oldest of them is IDLE_COMMIT_SECONDS old: an idle child commits them early,
            # a busy one not after every data frame (each COMMIT writes the index pages it
            # touched to the WAL again). Frames that keep coming (a child slower than its
            # pipeline) are committed every MAX_COMMIT_SECONDS all the same.
            if stream.held_rows and not inbox.ready():
                stream.insert_held()  # all that waits is read: insert before waiting
            now = time.monotonic()
            if stream.pending and now - oldest >= MAX_COMMIT_SECONDS:
                for reply in stream.commit():
                    outbox = _reply(outbox, reply)
                stream.release()  # after the replies: the parent need not wait for the free
            wait = 0.0 if stream.owed else oldest + IDLE_COMMIT_SECONDS - now
            payload = inbox.next(block=not stream.pending, wait=max(wait, 0.0))
            if payload is None:
                if inbox.eof:
                    break
                for reply in stream.commit():  # nothing else waiting: commit, answer
                    outbox = _reply(outbox, reply)
                stream.release()
                continue
            if not stream.pending:
                oldest = time.monotonic()
            if type(payload) is _Control:  # a detach: everything before it is committed
                detached = True
                break
            stream.add(payload, data=type(payload) is _Data)
            if stream.owed >= _MAX_GROUPS_PER_COMMIT:
                for reply in stream.commit():
                    outbox = _reply(outbox, reply)
                stream.release()
        for reply in stream.finish():  # end-of-file: what was read is committed all the same
            outbox = _reply(outbox, reply)
    finally:
        store.close()  # the final checkpoint; the file is not held open while parked
    if detached:
        outbox = _reply(outbox, ("detached",))
    return outbox, detached


def _await_open(inbox: _FrameReader, idle_seconds: float | None) -> Callable[[], Any] | None:
    """Parked: the next store's factory, or None (end-of-file, idle timeout, not an open)."""
    import pickle

    gc.collect()  # the closed store's cycles, while nothing waits for this process
    if not inbox.buffer and not select.select([inbox.fd], [], [], idle_seconds)[0]:
        return None
    payload = inbox.next(block=True)
    if type(payload) is not _Control:
        return None
    message = pickle.loads(payload)
    return message[1] if message[0] == "open" else None


def _reply(outbox: IO[bytes] | None, reply: Any) -> IO[bytes] | None:
    """Send one reply; None once the parent is gone (the child keeps committing the pipe)."""
    if outbox is None:
        return None
    import pickle  # only the child replies: a thread-writer run never loads it (cold start)

    try:
        payload = reply if type(reply) is bytes else pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        _write_frame(outbox, payload)
    except OSError:
        return None
    return outbox

"""The group committer's sends from outside its task: rows sent ahead, groups ended early.

GroupCommitter (persistence/_group_commit.py) gathers rows and commits them from its own task;
the methods here send from wherever rows arrive, on the loop's thread: a group's transitions go
ahead to the writer child in data frames while the group is gathered (_stream, STREAM_ROWS;
persistence/_writer_stream.py is the child's side), a backlog built within one turn of the loop
leaves before the turn ends (_send_backlog, BACKLOG_ROWS), and flush() or the end of the last
run in flight ends the gathered group at once (end_group_now). GroupCommitter inherits them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from persistence._channel import Channel, Item

if TYPE_CHECKING:
    from persistence._group_write import Parts
    from persistence._writer_parts import Streamed
    from persistence.stores.base import Store

Group = list[tuple[Channel, list[Item]]]
_group_numbers = itertools.count(1)  # a streamed group's number, unique in this process


class _StreamParts:
    """What _stream needs from the writer modules, imported once a committer streams (they
    are not loaded for stores without a writer process: `pipestate run`'s cold start)."""

    def load(self) -> None:
        """Import them now (idempotent)."""
        from persistence._frame import dump_group, encode_parts
        from persistence._writer_child import data_frame
        from persistence._writer_parts import Streamed

        self.dump_group, self.encode_parts = dump_group, encode_parts
        self.data_frame, self.Streamed = data_frame, Streamed


stream_parts = _StreamParts()


class GroupSends:
    """GroupCommitter's sends outside its task (its state is GroupCommitter's, see __init__)."""

    channels: tuple[Channel, ...]
    store: Store
    max_rows: int
    free_slots: int
    urgent: asyncio.Event | None
    tasks: set[asyncio.Task[Any]]
    derive: Callable[[], bool]
    _streamed: Streamed | None
    _stream_channel: Channel | None
    _encoded_parts: Callable[..., Parts] | None
    _end_now: bool

    # GroupCommitter's own methods, which these call.
    _flush: Callable[..., Coroutine[Any, Any, None]]
    _encode: Callable[..., Parts]
    _release_slot: Callable[..., None]

    def end_group_now(self) -> None:
        """End the gathered group now, from the loop's thread (a flush()): sent at once with a
        slot to spare, else run() sends it as soon as it has its slot, without a commit delay."""
        if self._encoded_parts is not None:  # a writer child's pipe takes groups in order
            self._send_backlog()
        if self._streamed is None and not any(c.ready_count() for c in self.channels):
            return  # sent: waking run() would only cost the loop a turn (~15 us)
        self._end_now = True
        for channel in self.channels:
            channel.wake()

    def _send_backlog(self) -> None:
        """Send what is queued now, from inside the loop's turn (Channel.notify; see BACKLOG_ROWS).

        Only with a slot to spare (one stays for run()) and a writer child running; otherwise
        the rows wait for run() as usual. The group is settled by its own _flush task.
        """
        if self.free_slots <= 1:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # emitted on the loop's thread while it is not running
            return
        group, streamed = self._take_group()
        if not group:
            return
        self.free_slots -= 1
        self._send_now(group, streamed, loop)

    def _take_group(self) -> tuple[Group, Streamed | None]:
        """Take every channel's ready rows (up to max_rows each) and the rows streamed ahead.

        With streamed rows the transitions part comes first, even empty: the child adds the
        data frames' rows to the first part of the group's reply (persistence/_writer_stream.py).
        """
        streamed, self._streamed = self._streamed, None
        group: Group = []
        for channel in self.channels:
            batch: list[Item] = []
            ahead = streamed.rows if streamed is not None and channel is self._stream_channel else 0
            channel.take_ready(batch, self.max_rows - ahead)
            channel.in_flight += len(batch)
            if ahead:
                group.insert(0, (channel, batch))
            elif batch:
                group.append((channel, batch))
        return group, streamed

    def _send_now(
        self, group: Group, streamed: Streamed | None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Encode a group and hand it to the writer now; its _flush task settles it (one slot).

        Sent from here, not from the task, so that no other group's rows can enter the pipe
        before this group's last frame.
        """
        loop = loop or asyncio.get_running_loop()
        derive = streamed.derive if streamed is not None else self.derive()
        parts = self._encode(group, derive, streamed)
        try:
            sent = self.store.submit_nowait(parts, derive=derive, loop=loop)  # type: ignore[attr-defined]
        except Exception:  # the task's own attempt meets (and handles) the same error
            sent = None
        task = loop.create_task(self._flush(group, sent=sent, derive=derive, parts=parts))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(self._release_slot)

    def _stream(self) -> None:
        """Send the queued transitions to the writer child now, as rows of the next group.

        Channel.notify calls it, on the loop's thread, once STREAM_ROWS are queued. Nothing is
        sent while no child runs, its pipe is backed up (the rows then wait in the queue, where
        backpressure is decided), the group is full, or the group's rows went to another child.
        """
        channel = self._stream_channel
        streamed = self._streamed
        if channel is None:
            return
        if streamed is not None and streamed.rows + channel.ready_count() > self.max_rows:
            # The group is full while the loop's turn goes on (a thousand pipelines): it ends
            # here, as a backlog would, and the next rows start the next group.
            self._send_backlog()
            streamed = self._streamed
            if streamed is not None:  # no slot to spare: run() ends it after this turn
                return
        link = self.store.stream_link()  # type: ignore[attr-defined]
        if link is None or (streamed is not None and link is not streamed.link):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # emitted on the loop's thread while it is not running
            return
        batch: list[Item] = []
        channel.take_ready(batch, self.max_rows - (streamed.rows if streamed is not None else 0))
        if not batch:
            return
        if streamed is None:
            streamed = stream_parts.Streamed(next(_group_numbers), link, self.derive())
        try:
            encoded, rejected = stream_parts.encode_parts([(channel.table, batch)])
            payload = stream_parts.dump_group(encoded, streamed.derive, streamed.group_id)
            frame = stream_parts.data_frame(payload)
            sent = self.store.stream_nowait(link, frame, loop)  # type: ignore[attr-defined]
        except Exception:  # the rows stay queued: the group's own frame meets the error
            sent = False
        if not sent:
            channel.queue.extendleft(reversed(batch))
            return
        streamed.add(frame, len(batch), rejected[0])
        channel.in_flight += len(batch)
        self._streamed = streamed

    def _streaming(self) -> bool:
        """Rows of the gathered group went ahead, no flush waits, no channel holds a batch."""
        return (
            self._streamed is not None
            and not (self.urgent is not None and self.urgent.is_set())
            and not any(c.ready_count() >= self.max_rows for c in self.channels)
        )

    def _drop_streamed(self, reason: str) -> None:
        """Count rows streamed ahead for a group that will never be sent as dropped."""
        streamed, self._streamed = self._streamed, None
        channel = self._stream_channel
        if streamed is not None and channel is not None:
            channel.in_flight -= streamed.rows
            channel.settle(streamed.rows, drops={reason: streamed.rows})

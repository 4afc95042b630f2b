"""The parent's end of one writer child (persistence/_writer_process.py): pipes, replies, reaping.

Both pipes are non-blocking and nothing in the parent ever blocks on them:
- requests: frames the pipe cannot take yet wait in `out` (in send order, under the
  WriterProcess's send lock); the event loop that sent them watches the pipe for room
  (add_writer), a thread waits in select;
- replies: whoever drives them reads what has arrived and resolves the oldest pending groups
  (the child answers in the order it read). The driver is the event loop that sent the
  groups (add_reader: a reply settles on the loop with no thread hand-off, which would wait
  for the GIL a busy loop holds for up to the 5 ms switch interval), or a reader thread for
  groups sent from threads, or a thread waiting for a reply (write(), close()).
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from persistence._frame import load_reply
from persistence._writer_child import _HEADER
from persistence.stores.base import RowError, StoreError, WriteResult

if TYPE_CHECKING:  # asyncio loads only with an event loop (`pipestate query` never needs it)
    import asyncio

    AnyFuture = Future["GroupOutcome"] | asyncio.Future["GroupOutcome"]

# (results, derived (table, result) pairs, derive failures) of one group.
GroupOutcome = tuple[list[WriteResult], list[tuple[str, WriteResult]], int]
# Replies are ~200 bytes each: a 64 KiB read takes hundreds, from the heap. os.read(fd, 1 MiB)
# allocated (mmap) and freed a MiB per call: ~17 us of each group's ~60 us reply handling.
_READ_SIZE = 1 << 16


class Link:
    """One forked writer: its pipes, the groups awaiting a reply (in send order), who reads."""

    def __init__(self, pid: int, send_fd: int, receive_fd: int, path: str) -> None:
        self.pid = pid
        self.owner = os.getpid()
        self.path = path
        self.alive = True
        self.send_fd = send_fd
        self.send_closed = False
        self.out = bytearray()
        self.out_loop: asyncio.AbstractEventLoop | None = None  # watching send_fd for room
        self.out_thread = 0  # that loop's thread
        self.receive_fd = receive_fd
        self.inbox = bytearray()
        self.pending: collections.deque[tuple[AnyFuture, list[list[RowError]] | None]] = (
            collections.deque()
        )
        self.pending_lock = threading.RLock()  # pending, inbox and the end of the child
        self.reply_loop: asyncio.AbstractEventLoop | None = None  # reads replies (add_reader)
        self.reply_thread: threading.Thread | None = None  # or this thread does
        self.reaping = False  # someone reaps (or has reaped) the child
        self.reaper: threading.Thread | None = None  # a thread reaping it for an event loop
        self.finisher = 0  # the thread in finish(): it reaps the child itself
        # (device, inode) of the files the parent had open when this child was forked: a
        # parked child never opens them (persistence/_writer_pool.py).
        self.inherited: frozenset[tuple[int, int]] | None = None  # None: unknown, never parked

    # -- requests (the caller holds the WriterProcess's send lock) -----------------------------

    def queue(self, future: AnyFuture, frame: bytes, rejected: list[list[RowError]] | None) -> None:
        """Register a group's future and send its frame, as far as the pipe takes it now.

        rejected=None: a control frame, whose future gets the child's reply as it is.
        """
        with self.pending_lock:
            if not self.alive:  # died since: the next submit forks a new one
                _fail(
                    future, StoreError(f"writer process for {self.path!r} exited", retryable=True)
                )
                return
            self.pending.append((future, rejected))
        self.out += frame
        self.pump()

    def queue_open(self, frame: bytes) -> None:
        """Send a parked child its "open" frame (no reply: a failure is the first write's)."""
        self.out += frame
        self.pump()

    def pump(self) -> None:
        """Write as much of `out` as the pipe takes now.

        A child that is gone (EPIPE) is killed for good measure; whoever reads its replies
        sees end-of-file and fails the pending groups (retryable), so `out` is dropped here.
        """
        out = self.out
        if self.send_fd < 0:  # closed (close() gave up on it): nothing will read it now
            return
        try:
            while out:
                del out[: os.write(self.send_fd, out)]
        except BlockingIOError:
            pass
        except OSError:
            out.clear()
            _signal(self.pid, signal.SIGKILL)

    def watch_room(self, loop: asyncio.AbstractEventLoop, send: Callable[[], None]) -> None:
        """Have `loop` call send() whenever the pipe has room, while `out` is not empty."""
        if self.out and self.out_loop is None and not self.send_closed:
            loop.add_writer(self.send_fd, send)
            self.out_loop, self.out_thread = loop, threading.get_ident()

    def room_ready(self) -> None:
        """add_writer callback's work: send more; stop watching once `out` is empty."""
        self.pump()
        loop = self.out_loop
        if not self.out and loop is not None and not self.send_closed:
            loop.remove_writer(self.send_fd)
            self.out_loop = None

    def close_send(self) -> None:
        """Close the request pipe (the child then commits what it has read and exits).

        An event loop still watching the pipe (a stop() that timed out) forgets it first: on
        its own thread at once, else through call_soon_threadsafe, which then closes the pipe.
        """
        if self.send_closed:
            return
        self.send_closed = True
        loop, self.out_loop = self.out_loop, None
        if loop is not None and self.out_thread != threading.get_ident():
            with contextlib.suppress(RuntimeError):  # a closed loop watches nothing any more
                loop.call_soon_threadsafe(self._unwatch_and_close, loop, True)
                return
        self._unwatch_and_close(loop, True)

    def _unwatch_and_close(self, loop: asyncio.AbstractEventLoop | None, send: bool) -> None:
        """Stop `loop` watching one pipe, then close it (once; -1 marks it closed)."""
        fd = self.send_fd if send else self.receive_fd
        if fd < 0:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):
                if send:
                    loop.remove_writer(fd)
                else:
                    loop.remove_reader(fd)
        if send:
            self.send_fd = -1
        else:
            self.receive_fd = -1
        with contextlib.suppress(OSError):
            os.close(fd)

    # -- replies ---------------------------------------------------------------------------------

    def read_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let `loop` read the replies (add_reader), unless a thread or a running loop does.

        A reader elsewhere resolves this loop's futures thread-safely; a loop that is closed
        or not running is replaced, or its groups would wait for it for ever.
        """
        with self.pending_lock:
            current = self.reply_loop
            if current is loop or self.reply_thread is not None or not self.alive:
                return
            if current is not None and not current.is_closed():
                if current.is_running():
                    return
                current.remove_reader(self.receive_fd)
            self.reply_loop = loop
            loop.add_reader(self.receive_fd, self.read_available)

    def read_in_thread(self) -> None:
        """Make sure someone reads the replies: a thread, unless a running event loop does."""
        with self.pending_lock:
            current = self.reply_loop
            if self.reply_thread is not None or not self.alive:
                return
            if current is not None and not current.is_closed():
                if current.is_running():
                    return
                current.remove_reader(self.receive_fd)
            self.reply_loop = None
            self.reply_thread = threading.Thread(
                target=self._read_forever, name="pipestate-sqlite-replies", daemon=True
            )
            self.reply_thread.start()

    def _read_forever(self) -> None:
        """The reader thread: read and resolve replies until the child is gone, then reap it."""
        while self.alive:
            with contextlib.suppress(OSError, ValueError):
                select.select([self.receive_fd], [], [], 1.0)
            self.read_available()

    def wait_for(self, future: Future[GroupOutcome]) -> GroupOutcome:
        """Block until `future` (a group sent from this thread) is answered, reading if need be."""
        while not future.done() and self.alive and self.reply_thread is None:
            with contextlib.suppress(OSError, ValueError):
                select.select([self.receive_fd], [], [], 0.5)
            self.read_available()
        return future.result()

    def read_available(self) -> None:
        """Read what has arrived, resolve those groups; at end-of-file fail the rest, reap."""
        with self.pending_lock:
            if not self.alive:
                return
            while True:
                try:
                    chunk = os.read(self.receive_fd, _READ_SIZE)
                except BlockingIOError:
                    return
                except OSError:
                    chunk = b""
                if not chunk:
                    self._ended()
                    return
                self.inbox += chunk
                self._resolve_frames()
                if len(chunk) < _READ_SIZE:
                    return

    def _resolve_frames(self) -> None:
        inbox = self.inbox
        while len(inbox) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(inbox)
            end = _HEADER.size + size
            if len(inbox) < end:
                return
            payload = bytes(inbox[_HEADER.size : end])
            del inbox[:end]
            future, rejected = self.pending.popleft()
            try:
                outcome = _outcome(load_reply(payload), rejected)
            except Exception as error:
                _fail(future, error)
            else:
                _succeed(future, outcome)

    def _ended(self) -> None:
        """The child closed its end: fail what it never answered, close, reap (never blocking)."""
        self.alive = False
        left = list(self.pending)
        self.pending.clear()
        for future, _ in left:
            _fail(
                future,
                StoreError(
                    f"writer process for {self.path!r} exited; the group is retried",
                    retryable=True,
                ),
            )
        loop, self.reply_loop = self.reply_loop, None
        if loop is not None and not loop.is_closed() and _running_loop() is not loop:
            with contextlib.suppress(RuntimeError):  # the loop forgets the pipe, then closes it
                loop.call_soon_threadsafe(self._unwatch_and_close, loop, False)
                loop = None
        if loop is not None or self.receive_fd >= 0:
            self._unwatch_and_close(loop, False)
        if self._claim_reaping():
            blocking = threading.get_ident() == self.finisher
            if blocking or threading.current_thread() is self.reply_thread:
                _wait(self.pid, 60.0)
            elif not _reaped_now(self.pid):  # an event loop must not wait: a thread reaps
                self.reaper = threading.Thread(target=_wait, args=(self.pid, 60.0), daemon=True)
                self.reaper.start()

    def _claim_reaping(self) -> bool:
        """True once: the caller reaps the child (nobody else may wait for its pid)."""
        with self.pending_lock:
            claimed, self.reaping = self.reaping, True
        return not claimed

    def finish(self, timeout: float, send_lock: threading.RLock) -> None:
        """Send what is buffered, close the request pipe: the child commits, exits, is reaped."""
        if self.owner != os.getpid():
            return
        self.finisher = threading.get_ident()
        deadline = time.monotonic() + timeout
        while self.alive:
            with send_lock:
                self.pump()
                if not self.out or self.send_closed:
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(OSError, ValueError):
                select.select([], [self.send_fd], [], min(left, 1.0))
        with send_lock:
            self.close_send()
        thread = self.reply_thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        else:  # the child answers what it has, then end-of-file: read it here, bounded
            while self.alive and time.monotonic() < deadline:
                with contextlib.suppress(OSError, ValueError):
                    select.select([self.receive_fd], [], [], deadline - time.monotonic())
                self.read_available()
        if self.alive:  # a child that will not finish: kill it; its end-of-file follows
            _signal(self.pid, signal.SIGKILL)
            if thread is not None:
                thread.join()
            while self.alive:
                with contextlib.suppress(OSError, ValueError):
                    select.select([self.receive_fd], [], [], 1.0)
                self.read_available()
        if self.reaper is not None:  # an event loop saw the end first
            self.reaper.join()

    def retire(self) -> tuple[int, int, int] | None:
        """Hand a detached child over (pid, send fd, receive fd); None if it cannot be.

        After this the link reads nothing and closes nothing: an event loop still watching
        the reply pipe forgets it (on its own thread, before anything a later link of the same
        child registers there), a reader thread ends at its next wake-up.
        """
        with self.pending_lock:
            if not self.alive or self.pending or self.out or self.send_closed:
                return None
            self.alive = False
            self.reaping = True  # whoever parks it reaps it
            handed = (self.pid, self.send_fd, self.receive_fd)
            for loop, fd, remove in (
                (self.reply_loop, self.receive_fd, "remove_reader"),
                (self.out_loop, self.send_fd, "remove_writer"),
            ):
                if loop is None or loop.is_closed():
                    continue
                if _running_loop() is loop or not loop.is_running():
                    getattr(loop, remove)(fd)
                else:
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(getattr(loop, remove), fd)
            self.reply_loop = self.out_loop = None
            self.send_fd = self.receive_fd = -1
            self.send_closed = True
        return handed

    def forget(self) -> None:
        """In a forked process: close the inherited pipe ends (no thread runs here)."""
        for fd in (self.send_fd, self.receive_fd):
            if fd >= 0:  # -1: closed already (its number may belong to a newer pipe now)
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.send_fd = self.receive_fd = -1
        self.send_closed = True
        self.alive = False
        self.reaping = True


def _succeed(future: AnyFuture, outcome: GroupOutcome) -> None:
    if isinstance(future, Future):
        future.set_result(outcome)
    else:
        _on_loop(future, future.set_result, outcome)


def _fail(future: AnyFuture, error: BaseException) -> None:
    if isinstance(future, Future):
        future.set_exception(error)
    else:
        _on_loop(future, future.set_exception, error)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """This thread's running event loop; None without one (or without asyncio loaded at all)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()  # type: ignore[no-any-return]
    except RuntimeError:
        return None


def _reaped_now(pid: int) -> bool:
    """Reap the child if it has exited, without waiting; True if it is gone."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _on_loop(future: asyncio.Future[Any], settle: Callable[[Any], None], value: Any) -> None:
    """Settle an event loop's future from whichever thread read the reply."""
    loop = future.get_loop()
    if _running_loop() is loop:
        if not future.done():  # a cancelled wait (stop()) has nothing to settle
            settle(value)
        return
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle_if_pending, future, settle, value)


def _settle_if_pending(
    future: asyncio.Future[Any], settle: Callable[[Any], None], value: Any
) -> None:
    if not future.done():
        settle(value)


def _outcome(reply: Any, rejected: list[list[RowError]] | None) -> GroupOutcome:
    """A child's reply as a GroupOutcome (rows refused in the parent added), or raise.

    rejected=None: the reply to a control frame, returned as it is.
    """
    if rejected is None:
        return reply  # type: ignore[no-any-return]
    if reply[0] == "error":
        _, kind, message, retryable = reply
        if retryable is None:
            raise StoreError(f"{kind}: {message}", retryable=False)
        raise StoreError(message, retryable=retryable)
    results, derived, failures = reply[1]
    results = [
        WriteResult(r.written, (*r.rejected, *bad)) if bad else r
        for r, bad in zip(results, rejected, strict=True)
    ]
    return results, derived, failures


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait(pid: int, timeout: float) -> None:
    """Reap the child; kill it if it has not exited within `timeout` seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: wait without a bound
        pidfd = None
    if pidfd is not None:
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        if not ready:
            _signal(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def grow_pipe(fd: int) -> None:
    """Let the request pipe hold ~1 MiB (Linux): a burst sent before a crash waits there."""
    import fcntl

    setter = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setter is None:
        return
    # Above /proc/sys/fs/pipe-max-size for an unprivileged user: keep the default 64 KiB.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, setter, 1 << 20)

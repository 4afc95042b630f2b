"""Run synchronous processors in worker threads, so a blocking `def` never stalls the loop.

Why not asyncio.to_thread: a thread cannot be interrupted, so a step whose sync processor times
out (or whose run is cancelled) leaves its thread running. In the default executor such a
thread would hold up asyncio.run()'s shutdown and the interpreter's exit (concurrent.futures
joins its workers); here each call gets a daemon thread, so the run ends at its deadline and the
process can exit. The number of threads a run has alive (including abandoned ones still
finishing) is bounded by a semaphore of `limit` slots held until the thread really ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any

_log = logging.getLogger(__name__)


class SyncRunner:
    """Calls blocking functions in daemon threads, at most `limit` alive at a time."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit: expected an integer >= 1 (got {limit!r}).")
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.alive = 0

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) in a thread and return its result (its exception is raised here)."""
        loop = asyncio.get_running_loop()
        await self._slots.acquire()
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()
        self.alive += 1

        def finish(result: Any, error: BaseException | None) -> None:
            self.alive -= 1
            self._slots.release()  # the slot is free only once the thread has ended
            if future.done():  # the awaiting step timed out or was cancelled
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # handed to the loop, which decides
                error = exc
            try:
                loop.call_soon_threadsafe(finish, result, error)
            except RuntimeError:  # the loop is closed: nobody waits for this result any more
                _log.debug("sync processor finished after its event loop closed")

        thread = threading.Thread(target=work, name=f"pipestate-sync-{fn!r:.40}", daemon=True)
        try:
            thread.start()
        except BaseException:
            self.alive -= 1
            self._slots.release()
            raise
        return await future

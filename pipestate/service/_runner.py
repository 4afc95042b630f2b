"""Where the pipelines run: RunnerLoop (a loop in a thread of its own) or ServingLoop (uvicorn's).

RunnerLoop: the API's loop (uvicorn's) only validates, admits, hands a run over and answers;
the pipelines, the MetadataLogger's workers and every transition run on a second loop in a
runner thread. A submit never waits behind pipeline work on its loop, but every submit and
every finished run is a hand-over between two threads that share the GIL. One runner thread,
not a pool: with the GIL a second thread of Python adds no throughput, and one loop keeps one
MetadataLogger on one loop, as it is designed.

ServingLoop: the runs are tasks on the serving loop itself (the issue's "one process serves
the API and runs the pipelines as asyncio tasks on its loop"): no hand-over, no second thread
taking the GIL, at the price of requests waiting behind pipeline steps on one loop.
`pipestate serve --runner loop|thread` chooses (benchmarks/service.py measures both). Measured
(issue 13, interleaved pairs on a loaded 2-core machine): the loop saves about 40 % of the
process's blocking waits per submit and about 10 % of its CPU, but its submit and /healthz p99
were higher (a request waits for every step ready on the loop), so the thread stays the default.

The runner thread runs at a lower CPU priority than the API thread and, when busy, offers the
GIL once a millisecond (_api_priority.py; `pipestate serve --runner-nice/--runner-yield-us`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pipestate.service._api_priority import GilHandover, lower_this_thread

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (uvicorn[standard] brings it), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the service extra installs it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class RunnerLoop:
    """An asyncio loop running forever in a daemon thread until stop()."""

    def __init__(self, name: str = "pipestate-runner", *, nice: int = 0, yield_us: int = 0) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        # The API thread before the runs (_api_priority.py): the runner thread's added
        # niceness, and the GIL pause a busy runner loop offers each millisecond (0: none).
        self.nice, self.yield_us = nice, yield_us
        self.handover: GilHandover | None = None

    async def open(self) -> None:
        """From the serving loop: start the runner thread (off this loop: it blocks briefly)."""
        await asyncio.to_thread(self.start)

    async def close(self) -> None:
        """From the serving loop: stop the runner loop and join its thread."""
        await asyncio.to_thread(self.stop)

    def start(self) -> None:
        """Start the thread and its loop; return once the loop runs."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        lower_this_thread(self.nice)  # before anything here starts a thread or a process
        loop = self.loop = _new_loop()
        asyncio.set_event_loop(loop)
        if self.yield_us > 0:
            self.handover = GilHandover(loop, self.yield_us)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            self._close(loop)

    @staticmethod
    def _close(loop: asyncio.AbstractEventLoop) -> None:
        """Cancel what is left (stop() drained the runs first), then close the loop."""
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        with contextlib.suppress(RuntimeError):
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    @property
    def in_thread(self) -> bool:
        """True when called from the runner thread itself."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coro` on the runner loop; a future any thread can wait on."""
        if self.loop is None:
            coro.close()
            raise RuntimeError("the runner loop is not running")
        if self.handover is not None:
            self.handover.arm()
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` run on the runner loop, from another loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule `callback(*args)` on the runner loop, from any thread (in order)."""
        if self.loop is None:
            raise RuntimeError("the runner loop is not running")
        if self.handover is not None:
            self.handover.arm()
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (cancelling what is left on it) and join the thread."""
        if self.loop is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


class ServingLoop(RunnerLoop):
    """The runs on the serving loop itself: calls from that loop run inline, others hop onto it."""

    def __init__(self, name: str = "serving-loop", *, nice: int = 0, yield_us: int = 0) -> None:
        # No priority change here: this loop is the API's own (nice and yield_us are ignored).
        super().__init__(name)
        self._loop_thread: threading.Thread | None = None

    async def open(self) -> None:
        """Adopt the running (serving) loop."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.current_thread()
        self._ready.set()

    async def close(self) -> None:
        """Nothing to stop: the server owns its loop (the lifespan cancelled the runs)."""
        self.loop = None

    def start(self) -> None:
        """Not used: open() adopts the serving loop."""
        raise RuntimeError("ServingLoop runs on the serving loop: await open() from it")

    def stop(self, timeout: float = 10.0) -> None:
        """Nothing to join: the server owns its loop."""
        self.loop = None

    @property
    def in_thread(self) -> bool:
        """True when called from the serving loop's thread."""
        return self._loop_thread is not None and threading.current_thread() is self._loop_thread

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro`: inline on the serving loop, else run there."""
        if self.in_thread:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule `callback(*args)` on the serving loop (no wake-up when already on it)."""
        if self.loop is None:
            raise RuntimeError("the serving loop is not running")
        if self.in_thread:
            self.loop.call_soon(callback, *args)
        else:
            self.loop.call_soon_threadsafe(callback, *args)


RUNNERS = {"thread": RunnerLoop, "loop": ServingLoop}

"""serve(): uvicorn with a graceful drain on SIGTERM/SIGINT, exiting 0.

First signal: new runs get 503 and /readyz turns 503 while running pipelines get
`grace_seconds` to finish; then uvicorn stops, and the lifespan cancels what is left (every
entity ends terminal), drains the logger and closes the store (draining an outbox). A second
SIGINT forces uvicorn out at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from types import FrameType
from typing import Any

import uvicorn

from pipestate.service.app import Plugins, create_app
from pipestate.service.settings import ServiceSettings

_log = logging.getLogger("pipestate.service")
# CPython's young thresholds, whatever the CLI's start-up set; full collections 10x rarer.
SERVE_GC_THRESHOLD = (700, 10, 100)


class GracefulServer(uvicorn.Server):
    """A uvicorn Server whose first signal drains the runs before it stops accepting."""

    def __init__(self, config: uvicorn.Config, app: Any, grace_seconds: float) -> None:
        super().__init__(config)
        self.pipestate_app = app
        self.grace_seconds = grace_seconds
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        """Remember the loop the server runs on, then serve."""
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: Any = None) -> None:
        """Start (the lifespan ran: everything is imported and built), then freeze the heap.

        gc.freeze() moves every object alive now (modules, the app, its schemas) out of the
        collector's reach: a full collection then scans only what requests and runs allocate,
        which keeps its pause (that stops both loops) short.
        """
        await super().startup(sockets)
        gc.collect()
        gc.freeze()
        state = getattr(self.pipestate_app.state, "service", None)
        if state is not None:  # /metrics reports the pauses of serving, not of this start-up
            state.metrics.gc_pauses.reset()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: drain, then exit; a repeated signal exits at once.

        Unlike uvicorn's own handler, the signal is not re-raised after shutdown: a drained
        server exits 0.
        """
        state = getattr(self.pipestate_app.state, "service", None)
        if self._draining or state is None or self._loop is None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            return
        self._draining = True
        state.runs.stop_admitting()
        self._loop.call_soon_threadsafe(self._start_drain, state)

    def _start_drain(self, state: Any) -> None:
        self._drain_task = asyncio.ensure_future(self._drain(state))

    async def _drain(self, state: Any) -> None:
        running = state.runs.running
        _log.warning("draining: %d running pipeline(s), grace %ss", running, self.grace_seconds)
        finished = await state.runs.drain(self.grace_seconds)
        if not finished:
            _log.warning("grace period over: cancelling %d pipeline(s)", state.runs.running)
        self.should_exit = True


def serve(
    settings: ServiceSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    plugins: Plugins | None = None,
    log_level: str = "warning",
) -> int:
    """Run the service until a signal; return the exit code (0 after a clean drain)."""
    # The served process's collector policy, set here rather than left to the CLI: under
    # `python -m pipestate.cli` the CLI module runs twice (as __main__ and as pipestate.cli), so
    # steady_gc() cannot undo the start-up's 50,000 threshold, and one young collection then
    # walks ~50,000 objects (~11 ms of CPU with every thread stopped). At the default 700 a
    # young collection costs ~0.2 ms. Runs no longer leave cyclic garbage (issue 13): a full
    # collection under load freed 0 objects yet walked every live one (in-flight requests and
    # runs, the recent runs; 9-40 ms of CPU as they grew), so it runs 10x less often.
    gc.set_threshold(*SERVE_GC_THRESHOLD)
    if settings.switch_interval_ms is not None:
        # This process only (a library caller's interpreter is left alone).
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
    app = create_app(settings, plugins=plugins)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        # In-flight requests (e.g. ?wait=true) get a bounded time after the drain.
        timeout_graceful_shutdown=5,
        access_log=False,
    )
    server = GracefulServer(config, app, settings.grace_seconds)
    server.run()
    return 0 if server.started else 1

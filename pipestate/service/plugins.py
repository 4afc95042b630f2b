"""What `pipestate serve` plugs into the app: the dashboard, the watcher and the exporters.

create_app() knows nothing of them; this module builds the Plugins that the CLI passes in. The UI
router is built before the app has opened its store, so it reads the store (and the key ring that
checks a browser's API key) from the running service through a small holder bound at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from pipestate.service.app import Plugins


class _Running:
    """The live service state, set by a lifecycle when the app starts."""

    state: Any = None

    @contextlib.asynccontextmanager
    async def bind(self, state: Any) -> AsyncIterator[None]:
        """Remember the service state while the app runs."""
        self.state = state
        try:
            yield
        finally:
            self.state = None


class _StoreProxy:
    """Forwards every store call to the running service's store."""

    def __init__(self, running: _Running) -> None:
        self._running = running

    def __getattr__(self, name: str) -> Any:
        """The attribute of the service's store (the app has started by the first request)."""
        if self._running.state is None:
            raise RuntimeError("the service has not started")
        return getattr(self._running.state.store, name)


def _ui_router(running: _Running) -> Any:
    from pipestate.service.keys import parse_key_id
    from pipestate.ui.router import build_ui_router

    def authenticate(api_key: str) -> str | None:
        """The org of a valid, unrevoked key (the same check as the API's X-API-Key)."""
        if running.state is None:
            return None
        key = running.state.keys.authenticate(api_key)
        return None if key is None else str(key.org_slug)

    def still_active(key_id: str) -> bool:
        """A session lasts only while its key does (the key ring caches reads for 2 s)."""
        if running.state is None:
            return False
        key = running.state.keys.get(key_id)
        return key is not None and bool(key.active)

    return build_ui_router(
        _StoreProxy(running),
        authenticate,
        secret=os.environ.get("PIPESTATE_UI_SECRET") or None,
        subject_of=parse_key_id,
        session_valid=still_active,
    )


@contextlib.asynccontextmanager
async def _watcher(state: Any) -> AsyncIterator[None]:
    """Sweep orphaned runs and evaluate alerts every interval while the service runs."""
    from persistence.watch.watcher import Watcher

    watcher = Watcher(state.store)
    watcher.start()
    try:
        yield
    finally:
        await asyncio.to_thread(watcher.stop)


def _exporters(lineage: bool, otel: bool) -> Any:
    @contextlib.asynccontextmanager
    async def lifecycle(state: Any) -> AsyncIterator[None]:
        """Feed every transition to OpenLineage / OpenTelemetry workers, drained on stop."""
        from persistence.exporters import build_exporters
        from persistence.fanout import FanoutSink
        from statemachine.sink import NullSink

        fanout = FanoutSink(NullSink(), build_exporters(lineage, otel, service_name="pipestate"))
        fanout.start()
        state.runs.sinks = (*state.runs.sinks, fanout)
        try:
            yield
        finally:
            await asyncio.to_thread(fanout.stop)

    return lifecycle


def service_plugins(
    *, ui: bool = True, watch: bool = True, lineage: bool = False, otel: bool = False
) -> Plugins:
    """The dashboard under /ui, the watcher, and the exporters asked for."""
    running = _Running()
    lifecycles: list[Any] = [running.bind]
    routers = []
    if ui:
        routers.append(_ui_router(running))
    if watch:
        lifecycles.append(_watcher)
    if lineage or otel:
        lifecycles.append(_exporters(lineage, otel))
    return Plugins(routers=tuple(routers), lifecycles=tuple(lifecycles), http_telemetry=otel)

"""create_app(settings): the FastAPI app, its lifespan, routers, handlers and plug points.

Nothing starts at import. The lifespan opens the store, starts the runner thread (the loop the
pipelines and the MetadataLogger run on), the logger, the key ring and the RunManager, then any
plug-ins; on the way out it cancels what still runs, stops the plug-ins, drains the logger,
stops the runner thread and closes the store (which drains an outbox).

Plug points for the pieces that come later (watcher, exporters, UI):
- `routers`: extra APIRouters mounted as given (e.g. build_ui_router(...));
- `sinks`: factories `(state) -> TransitionSink` fed every transition (e.g. build_exporters);
- `lifecycles`: factories `(state) -> async context manager` entered after the runs start
  and left before the logger stops (e.g. a Watcher's start()/stop()).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
from fastapi import APIRouter, FastAPI

from pipestate.service._middleware import Edge
from pipestate.service._runner import RUNNERS
from pipestate.service.deps import ServiceState
from pipestate.service.errors import install_handlers
from pipestate.service.keys import KeyRing
from pipestate.service.metrics import ServiceMetrics
from pipestate.service.models import Problem
from pipestate.service.routers import admin, health, keys, pipelines, queries, runs
from pipestate.service.runs import RunManager
from pipestate.service.settings import ServiceSettings

SinkFactory = Callable[[ServiceState], Any]
LifecycleFactory = Callable[[ServiceState], contextlib.AbstractAsyncContextManager[Any]]


@attrs.frozen(kw_only=True)
class Plugins:
    """Extra routers, transition sinks and lifecycles plugged into one app."""

    routers: tuple[APIRouter, ...] = ()
    sinks: tuple[SinkFactory, ...] = ()
    lifecycles: tuple[LifecycleFactory, ...] = ()
    # FastAPI's own OpenTelemetry HTTP spans and metrics (FastAPI >= 0.165): on with --otel.
    http_telemetry: bool = False


def _open_store(settings: ServiceSettings) -> Any:
    from persistence.stores import open_store

    outbox: bool | str = settings.outbox_path or True
    return open_store(settings.store_url, outbox=outbox)


def _telemetry(wanted: bool) -> dict[str, Any]:
    """FastAPI's native telemetry off unless wanted (where this FastAPI has it).

    Even with no OpenTelemetry provider set up, it asks on every request whether one is
    (environment lookups through opentelemetry's globals): about 6 % of the API thread's time
    under load (py-spy, issue 13). `pipestate serve --otel` turns it back on.
    """
    if wanted or "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(
    settings: ServiceSettings | None = None,
    *,
    plugins: Plugins | None = None,
    store: Any = None,
) -> FastAPI:
    """Build the service app; `store` overrides settings.store_url (tests, benchmarks)."""
    from persistence.logger import MetadataLogger

    settings = settings or ServiceSettings.from_env()
    plugins = plugins or Plugins()
    metrics = ServiceMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = store if store is not None else await asyncio.to_thread(_open_store, settings)
        # The pipelines and the logger run on a loop of their own (runner "thread") or as
        # tasks on this, the serving loop (runner "loop"): _runner.py.
        runner = RUNNERS[settings.runner](
            nice=settings.runner_nice, yield_us=settings.runner_yield_us
        )
        await runner.open()
        logger = MetadataLogger(backend, derive_run_rows=True)
        await runner.call(logger.start())
        metrics.sources = (logger, backend)
        state = ServiceState(
            settings=settings,
            store=backend,
            logger=logger,
            runner=runner,
            keys=KeyRing(backend, cache_ttl=settings.key_cache_seconds),
            runs=RunManager(settings, logger, store=backend, metrics=metrics, runner=runner),
            metrics=metrics,
        )
        state.runs.sinks = tuple(factory(state) for factory in plugins.sinks)
        app.state.service = state
        metrics.gc_pauses.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for factory in plugins.lifecycles:
                    await stack.enter_async_context(factory(state))
                try:
                    yield
                finally:
                    await state.runs.close()
        finally:
            metrics.gc_pauses.stop()
            await runner.call(logger.stop())
            await runner.close()
            if store is None:
                await asyncio.to_thread(backend.close)

    app = FastAPI(
        **_telemetry(plugins.http_telemetry),
        title="pipestate",
        version=_version(),
        description="Run pipelines as state machines; read their audit trail. Errors are "
        "RFC 9457 problem details.",
        lifespan=lifespan,
        responses={
            "4XX": {"model": Problem, "description": "Problem details"},
            "5XX": {"model": Problem, "description": "Problem details"},
        },
    )
    install_handlers(app)
    app.include_router(health.router)
    for router in (admin.router, keys.router, pipelines.router, runs.router, queries.router):
        app.include_router(router)
    for router in plugins.routers:
        app.include_router(router)
    app.add_middleware(Edge, metrics=metrics, max_bytes=settings.max_body_bytes)
    app.openapi = functools.partial(_problem_openapi, app)  # type: ignore[method-assign]
    return app


def _problem_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with every error response as application/problem+json + Problem."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                if str(code)[0] in "45":
                    response["content"] = {"application/problem+json": problem}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema


def _version() -> str:
    from pipestate import __version__

    return __version__

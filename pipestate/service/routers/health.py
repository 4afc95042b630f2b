"""Liveness, readiness and Prometheus metrics (no key needed: they reveal no org data)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from persistence.stores.base import API_KEYS
from pipestate.service.deps import ServiceState, StateDep
from pipestate.service.models import Health

router = APIRouter(tags=["health"])
READY_STORE_TIMEOUT = 3.0
STORE_PROBE_TTL = 5.0
OVERFLOW_PCT = 90.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive and its event loop answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(state: StateDep) -> Response:
    """Ready: not shutting down, the store answers, no logger queue near overflow."""
    checks: dict[str, object] = {"accepting_runs": not state.runs.closing}
    checks["store"] = await _probe_store(state)
    depths = state.logger.get_queue_depths()
    worst = max(float(v["utilization_pct"]) for v in depths.values() if isinstance(v, dict))
    checks["queue_utilization_pct"] = worst
    ok = checks["accepting_runs"] and checks["store"] == "ok" and worst < OVERFLOW_PCT
    body = Health(status="ready" if ok else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


async def _probe_store(state: ServiceState) -> str:
    """ "ok" when the store answers a tiny read within 3 s (reused for STORE_PROBE_TTL s)."""
    now = time.monotonic()
    if state.store_probe is not None and now - state.store_probe[0] < STORE_PROBE_TTL:
        return state.store_probe[1]
    try:
        await asyncio.wait_for(
            asyncio.to_thread(state.store.select_rows, API_KEYS, {"key_id": "readyz"}, limit=1),
            READY_STORE_TIMEOUT,
        )
        verdict = "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        verdict = f"unreachable: {type(exc).__name__}"
    state.store_probe = (now, verdict)
    return verdict


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Prometheus text format: runs, transitions, queues, drops, outbox, request latency."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

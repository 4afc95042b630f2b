"""Typed dependencies: what a route needs, declared once (no route reads a header itself)."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

import attrs
from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader

from pipestate.service._runner import RunnerLoop
from pipestate.service.errors import Forbidden, Unauthorized
from pipestate.service.keys import ApiKey, KeyRing, parse_key_id
from pipestate.service.metrics import ServiceMetrics
from pipestate.service.models import SLUG_PATTERN
from pipestate.service.runs import RunManager
from pipestate.service.settings import ServiceSettings

ROOT_HEADER = "X-CA-Root-Key"
ORG_HEADER = "X-API-Key"


@attrs.define(kw_only=True)
class ServiceState:
    """Everything the lifespan started: routes and plug-ins reach it through dependencies.

    The logger lives on the runner loop (`runner`): await its coroutine methods through
    `runner.call(...)` (or `runs.flush()`); emit() and get_queue_depths() are safe anywhere.
    """

    settings: ServiceSettings
    store: Any
    logger: Any
    runner: RunnerLoop
    keys: KeyRing
    runs: RunManager
    metrics: ServiceMetrics
    # The last store probe of /readyz: (monotonic time, verdict); probes are reused briefly
    # (a BigQuery probe is a query job: a readiness check every few seconds must not be one).
    store_probe: tuple[float, str] | None = None


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per dependency per request.
async def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(_state)]


async def _store(state: StateDep) -> Any:
    return state.store


async def _runs(state: StateDep) -> RunManager:
    return state.runs


async def _keys(state: StateDep) -> KeyRing:
    return state.keys


# Reads first flush this process's pending rows (bounded), so a replica reads its own writes.
READ_FLUSH_SECONDS = 2.0


async def read_store(state: ServiceState) -> Any:
    """The store, after this process's pending rows were flushed (bounded)."""
    await state.runs.flush(READ_FLUSH_SECONDS)
    return state.store


async def _read_store(state: StateDep) -> Any:
    return await read_store(state)


StoreDep = Annotated[Any, Depends(_store)]
ReadStoreDep = Annotated[Any, Depends(_read_store)]
RunsDep = Annotated[RunManager, Depends(_runs)]
KeysDep = Annotated[KeyRing, Depends(_keys)]

_root_header = APIKeyHeader(name=ROOT_HEADER, auto_error=False, scheme_name="RootKey")
_org_header = APIKeyHeader(name=ORG_HEADER, auto_error=False, scheme_name="OrgKey")


def _is_root(state: ServiceState, presented: str | None) -> bool:
    expected = state.settings.root_key
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


async def root_access(
    state: StateDep,
    root_key: Annotated[str | None, Depends(_root_header)],
    org_key: Annotated[str | None, Depends(_org_header)],
) -> None:
    """Require the root key (compared in constant time with $CA_ROOT_API_KEY)."""
    if _is_root(state, root_key):
        return
    if root_key:
        raise Unauthorized(f"invalid {ROOT_HEADER}")
    if org_key and parse_key_id(org_key):
        raise Forbidden("this route needs the root key; an org key cannot use it")
    raise Unauthorized(f"this route needs the {ROOT_HEADER} header")


async def org_access(
    state: StateDep,
    org_slug: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=128)],
    org_key: Annotated[str | None, Depends(_org_header)],
    root_key: Annotated[str | None, Depends(_root_header)],
) -> ApiKey:
    """Require an active org key of the org in the path."""
    if not org_key:
        if _is_root(state, root_key):
            raise Forbidden("org routes need an org key (X-API-Key); the root key cannot use them")
        raise Unauthorized(f"this route needs the {ORG_HEADER} header")
    known, key = state.keys.cached(org_key)  # the hot path: no thread, no store
    if not known:
        key = await asyncio.to_thread(state.keys.authenticate, org_key)
    if key is None:
        raise Unauthorized(f"invalid or revoked {ORG_HEADER}")
    if key.org_slug != org_slug:
        raise Forbidden("this key belongs to another organisation")
    return key


RootAccess = Annotated[None, Depends(root_access)]
OrgAccess = Annotated[ApiKey, Depends(org_access)]

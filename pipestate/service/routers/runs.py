"""Read, list and cancel an org's runs (another org's run is a 404, like a missing one)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from persistence.queries import run_query
from pipestate.service.deps import (
    OrgAccess,
    ReadStoreDep,
    RunsDep,
    ServiceState,
    StateDep,
    read_store,
)
from pipestate.service.errors import Conflict, NotFound
from pipestate.service.models import (
    SLUG_PATTERN,
    CancelResult,
    RunDetail,
    RunList,
    RunSummary,
    TimelineEntry,
)
from pipestate.service.routers import API_PREFIX
from pipestate.service.runs import TERMINAL, LiveRun

router = APIRouter(prefix=f"{API_PREFIX}/runs", tags=["runs"])
RunId = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=128)]
STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "TIMEOUT")


def _from_timeline(rows: list[dict[str, Any]]) -> tuple[str, str | None, dict[str, str]]:
    """Pipeline state, pipeline id and step states from stored transitions (in time order)."""
    state, pipeline_id = "PENDING", None
    steps: dict[str, str] = {}
    for row in rows:
        if row["entity_type"] == "PIPELINE":
            pipeline_id = row["entity_name"]
            if state not in TERMINAL:  # a terminal state wins a timestamp tie
                state = row["to_state"]
        elif steps.get(row["entity_name"]) not in ("COMPLETED", "FAILED"):
            steps[row["entity_name"]] = row["to_state"]
    return state, pipeline_id, steps


async def _timeline(store: Any, org_slug: str, run_id: str) -> list[dict[str, Any]]:
    return await asyncio.to_thread(
        run_query, store, "timeline", pipeline_logging_id=run_id, org_slug=org_slug
    )


@router.get("/{org_slug}/{pipeline_logging_id}", response_model=RunDetail)
async def get_run(
    key: OrgAccess,
    runs: RunsDep,
    service: StateDep,
    pipeline_logging_id: RunId,
    wait: Annotated[bool, Query(description="Wait (bounded) for a live run to end")] = False,
    timeout: Annotated[  # noqa: ASYNC109 - a request parameter, not a coroutine deadline
        float, Query(gt=0, le=3600, description="Longest wait, seconds")
    ] = 60.0,
) -> RunDetail:
    """A run's state, its steps' states and its stored timeline (?wait=true: once it ends)."""
    live = runs.get(key.org_slug, pipeline_logging_id)
    return await read_run(
        service, key.org_slug, pipeline_logging_id, live=live, wait=wait, timeout=timeout
    )


async def read_run(
    service: ServiceState,
    org_slug: str,
    run_id: str,
    *,
    live: LiveRun | None,
    wait: bool,
    timeout: float,  # noqa: ASYNC109 - a request parameter, passed to the bounded runs.wait
) -> RunDetail:
    """The run's detail (`live`: the org's run of that id in this process, if any).

    The route above and the read fast path (_fast_paths.py) both answer through this.
    """
    if wait and live is not None:
        await service.runs.wait(live, timeout)
    view = live.view(timeline=True) if live is not None else None
    if view is not None and view.timeline_complete:  # started here: transitions in memory
        rows = view.timeline
    else:
        rows = await _timeline(await read_store(service), org_slug, run_id)
    if view is None and not rows:
        raise NotFound(f"no run {run_id!r}")
    state, pipeline_id, steps = _from_timeline(rows)
    if view is not None:
        state = view.state
        pipeline_id = view.pipeline_id or pipeline_id
        steps = view.steps or steps
    return RunDetail(
        pipeline_logging_id=run_id,
        org_slug=org_slug,
        pipeline_id=pipeline_id,
        state=state,
        live=view is not None and not view.done,
        steps=steps,
        timeline=[TimelineEntry(**row) for row in rows],
    )


@router.get("/{org_slug}", response_model=RunList)
async def list_runs(
    key: OrgAccess,
    store: ReadStoreDep,
    state: Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")] = None,
    pipeline_id: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=128)] = None,
    days: Annotated[int, Query(ge=0, le=3650)] = 7,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> RunList:
    """The org's recent runs, newest first, filtered by state and/or pipeline id."""
    rows = await asyncio.to_thread(
        run_query,
        store,
        "runs",
        org_slug=key.org_slug,
        state=state,
        pipeline_id=pipeline_id,
        days=days,
        limit=limit,
    )
    return RunList(
        runs=[RunSummary(**{k: v for k, v in row.items() if k != "org_slug"}) for row in rows]
    )


@router.post(
    "/{org_slug}/{pipeline_logging_id}/cancel",
    response_model=CancelResult,
    responses={409: {"description": "The run already ended, or runs on another replica"}},
)
async def cancel_run(
    key: OrgAccess, runs: RunsDep, store: ReadStoreDep, pipeline_logging_id: RunId
) -> CancelResult:
    """Cancel a live run: its open steps and the pipeline end FAILED, marked as cancelled."""
    live = runs.get(key.org_slug, pipeline_logging_id)
    if live is not None and not live.done:
        runs.cancel(key.org_slug, pipeline_logging_id, by=key.key_id)
        await runs.wait(live, 10.0)
        state = live.view().state
        return CancelResult(pipeline_logging_id=pipeline_logging_id, cancelled=True, state=state)
    rows = await _timeline(store, key.org_slug, pipeline_logging_id)
    if live is None and not rows:
        raise NotFound(f"no run {pipeline_logging_id!r}")
    state = live.view().state if live is not None else _from_timeline(rows)[0]
    if state in TERMINAL:
        raise Conflict(f"run {pipeline_logging_id!r} already ended {state}", state=state)
    raise Conflict(
        f"run {pipeline_logging_id!r} is {state} on another replica; cancel it there", state=state
    )

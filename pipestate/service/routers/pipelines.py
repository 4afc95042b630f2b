"""Start a pipeline run for an org (the seed's POST /api/v1/pipelines/run/...)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response

from pipestate.service.deps import OrgAccess, RunsDep
from pipestate.service.keys import ApiKey
from pipestate.service.models import SLUG_PATTERN, RunAccepted
from pipestate.service.routers import API_PREFIX
from pipestate.service.runs import TERMINAL, LiveRun, RunManager, RunView

router = APIRouter(prefix=f"{API_PREFIX}/pipelines", tags=["pipelines"])
Segment = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=128)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No key, or an invalid or revoked key"},
    403: {"description": "A key of another org, or the root key"},
    422: {"description": "Invalid pipeline or parameters (the failed run is stored; id given)"},
    429: {"description": "Too many running pipelines (Retry-After)"},
    503: {"description": "Shutting down"},
}


def accepted(run: LiveRun, view: RunView | None = None) -> RunAccepted:
    """The answer for a run: its id, where to follow it and its state so far (`view`: of it)."""
    view = view or run.view()
    result = view.result
    return RunAccepted(
        pipeline_logging_id=run.pipeline_logging_id,
        org_slug=run.org_slug,
        pipeline=run.pipeline,
        state=view.state,
        status_url=f"/api/v1/runs/{run.org_slug}/{run.pipeline_logging_id}",
        error_type=result.error_type if result else None,
        error_message=result.error_message if result else None,
        step_states=dict(result.step_states) if result else view.steps,
    )


async def submit(
    runs: RunManager,
    key: ApiKey,
    pipeline: str,
    params: dict[str, Any],
    *,
    wait: bool,
    timeout: float,  # noqa: ASYNC109 - a request parameter, passed to the bounded runs.wait
) -> tuple[RunAccepted, int]:
    """Start a run; with `wait`, wait (bounded) for it: (its answer, 200 if it ended else 202).

    The route below and the submit fast path (_fast_paths.py) both answer through this.
    """
    run = await runs.start(key.org_slug, pipeline, params, key_id=key.key_id)
    status, view = 202, None
    if wait:
        await runs.wait(run, timeout)
        view = run.view()
        if view.done and (view.result is not None or view.state in TERMINAL):
            status = 200
    return accepted(run, view), status


@router.post(
    "/run/{org_slug}/{provider}/{domain}/{pipeline}",
    response_model=RunAccepted,
    status_code=202,
    responses={200: {"description": "Finished (with ?wait=true)"}, **_ERRORS},
)
async def run_pipeline_route(
    key: OrgAccess,
    runs: RunsDep,
    response: Response,
    provider: Segment,
    domain: Segment,
    pipeline: Segment,
    params: Annotated[
        dict[str, Any] | None,
        Body(description='Run parameters, e.g. {"date": "2025-12-01"}'),
    ] = None,
    wait: Annotated[bool, Query(description="Wait (bounded) for the run to end")] = False,
    timeout: Annotated[  # noqa: ASYNC109 - a request parameter, not a coroutine deadline
        float, Query(gt=0, le=3600, description="Longest wait, seconds")
    ] = 60.0,
) -> RunAccepted:
    """Start configs/<provider>/<domain>/<pipeline>.yml for the org; 202 with the run id."""
    answer, response.status_code = await submit(
        runs, key, f"{provider}/{domain}/{pipeline}", params or {}, wait=wait, timeout=timeout
    )
    return answer

"""The analysis queries for an org, with `pipestate query`'s parameters, always org-filtered."""

from __future__ import annotations

import asyncio
import enum

from fastapi import APIRouter, Request

from persistence.queries import QUERY_NAMES, QueryError, run_query
from pipestate.service.deps import OrgAccess, ReadStoreDep
from pipestate.service.models import QueryResult
from pipestate.service.routers import API_PREFIX

router = APIRouter(prefix=f"{API_PREFIX}/queries", tags=["queries"])
QueryName = enum.Enum("QueryName", {name: name for name in QUERY_NAMES}, type=str)  # type: ignore[misc]


@router.get("/{org_slug}/{query_name}", response_model=QueryResult)
async def run_analysis(
    key: OrgAccess, store: ReadStoreDep, query_name: QueryName, request: Request
) -> QueryResult:
    """Run stuck, failures, steps, retries, timeline or runs; query-string values are its params."""
    params = dict(request.query_params)
    if "org_slug" in params:
        raise QueryError("org_slug comes from the path and the key; do not pass it")
    rows = await asyncio.to_thread(
        run_query, store, query_name.value, org_slug=key.org_slug, **params
    )
    return QueryResult(query=query_name.value, org_slug=key.org_slug, rows=rows)

"""Root-only administration: bootstrap the store's tables."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from pipestate.service.deps import RootAccess, StoreDep
from pipestate.service.models import BootstrapResult
from pipestate.service.routers import API_PREFIX

router = APIRouter(prefix=f"{API_PREFIX}/admin", tags=["admin"])


@router.post("/bootstrap", response_model=BootstrapResult)
async def bootstrap_store(_: RootAccess, store: StoreDep) -> BootstrapResult:
    """Create every missing table (idempotent) and say what was done."""
    from persistence.bootstrap import bootstrap

    report = await asyncio.to_thread(bootstrap, store)
    return BootstrapResult(
        created=list(report.created),
        existing=list(report.existing),
        actions=list(report.actions),
        changed=report.changed,
    )

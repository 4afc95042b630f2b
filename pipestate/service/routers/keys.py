"""Root-only org API keys: create (the key is shown once), list (never the key), revoke."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query

from pipestate.service.deps import KeysDep, RootAccess
from pipestate.service.errors import NotFound
from pipestate.service.models import SLUG_PATTERN, KeyCreate, KeyCreated, KeyInfo, KeyList
from pipestate.service.routers import API_PREFIX

router = APIRouter(prefix=f"{API_PREFIX}/admin/keys", tags=["keys"])
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"


@router.post("", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, _: RootAccess, keys: KeysDep) -> KeyCreated:
    """Create an org key; the response holds the key itself, shown this once."""
    record, token = await asyncio.to_thread(
        keys.create, body.org_slug, name=body.name, actor="root-api"
    )
    return KeyCreated(**record.public(), api_key=token)


@router.get("", response_model=KeyList)
async def list_keys(
    _: RootAccess,
    keys: KeysDep,
    org_slug: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=128)] = None,
) -> KeyList:
    """List keys (of one org with ?org_slug=), without secrets or hashes."""
    found = await asyncio.to_thread(keys.list, org_slug)
    return KeyList(keys=[KeyInfo(**k.public()) for k in found])


@router.delete("/{key_id}", response_model=KeyInfo)
async def revoke_key(
    key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)], _: RootAccess, keys: KeysDep
) -> KeyInfo:
    """Revoke a key (idempotent); every replica refuses it within the key cache time."""
    key = await asyncio.to_thread(keys.revoke, key_id, actor="root-api")
    if key is None:
        raise NotFound(f"no key {key_id!r}")
    return KeyInfo(**key.public())

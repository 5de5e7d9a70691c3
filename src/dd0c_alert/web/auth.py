"""API-key authentication for the REST API: a bearer key names its tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dd0c_alert.domain.lru import LRUCache
from dd0c_alert.storage.sql import hash_api_key

_bearer = HTTPBearer(auto_error=False, description="A tenant API key (`dd0c_…`).")
_CACHE_SECONDS = 30.0
#: Valid keys only (digest -> tenant), bounded: LRU beyond this many keys.
_cache: LRUCache[str, str] = LRUCache(max_entries=10_000, ttl_seconds=_CACHE_SECONDS)


async def tenant_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
    digest = hash_api_key(credentials.credentials)
    hit, cached = _cache.get(digest)
    if hit and cached is not None:
        return cached
    store = request.app.state.runtime.store
    found = await run_in_threadpool(store.tenant_for_api_key, credentials.credentials)
    if found is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    _cache.put(digest, str(found))
    return str(found)


TenantId = Annotated[str, Depends(tenant_id)]

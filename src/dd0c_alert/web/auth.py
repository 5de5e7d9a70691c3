"""Authentication for the REST API: who is calling, in which tenant.

- ``Authorization: Bearer dd0c_…``: an API key, naming its tenant and scope (revoked
  and expired keys are refused; the last use is recorded at most once a minute).
- ``Authorization: Bearer <JWT>``: a session access token (``sessions``).
- The ``dd0c_session`` cookie holding the same token (the dashboard); a
  state-changing request so authenticated must also carry the CSRF token: header
  ``X-CSRF-Token`` (or the field ``csrf_token`` of a url-encoded form) equal to
  the ``dd0c_csrf`` cookie.

A session's membership is checked on every request (cached for a few seconds), so
a removed member, a disabled user or a changed role takes effect at once in this
process and within ``_MEMBER_SECONDS`` in the others. The permission check itself
is ``permissions.require``.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from dd0c_alert.domain.lru import LRUCache
from dd0c_alert.pipeline.auth_config import AuthConfig
from dd0c_alert.storage.account_rows import API_KEY_PREFIX, ApiKey, Member, digest
from dd0c_alert.storage.accounts import AccountStore

from .audit import audit
from .principal import Principal, Role, Scope
from .sessions import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, Claims, read_access

_KEY_SECONDS = 10.0
_MEMBER_SECONDS = 5.0
_TOUCH_EVERY = timedelta(minutes=1)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Known keys only (digest -> stored key), bounded: LRU beyond this many keys.
_keys: LRUCache[str, ApiKey] = LRUCache(max_entries=10_000, ttl_seconds=_KEY_SECONDS)
#: (tenant, user) -> membership (None: not a member).
_members: LRUCache[tuple[str, str], Member | None] = LRUCache(
    max_entries=10_000, ttl_seconds=_MEMBER_SECONDS
)
#: (tenant, sign-in) -> whether it is still signed in (``AccountStore.session_alive``).
_sessions: LRUCache[tuple[str, str], bool] = LRUCache(
    max_entries=10_000, ttl_seconds=_MEMBER_SECONDS
)


#: Key id -> refused and audited lately (``_audit_refusal``).
_refusals: LRUCache[str, bool] = LRUCache(max_entries=10_000, ttl_seconds=60.0)


def forget_key(key_digest: str | None = None) -> None:
    """Drop cached keys (all of them, or one) after a revocation."""
    if key_digest is None:
        _keys.clear()
    else:
        _keys.pop(key_digest)


def forget_member(tenant_id: str, user_id: str) -> None:
    _members.pop((tenant_id, user_id))


def forget_session(tenant_id: str, family_id: str) -> None:
    """After a logout here: its access tokens are refused at once in this process
    (other processes notice within ``_MEMBER_SECONDS``)."""
    _sessions.pop((tenant_id, family_id))


def forget_sessions() -> None:
    """After a password change or reset here: every sign-in it revoked (all of the
    user's, in every tenant) is refused at once in this process, not when its cached
    answer expires. The cache holds no one else's revocations, so all of it goes."""
    _sessions.clear()


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def accounts(request: Request) -> AccountStore:
    store: AccountStore = request.app.state.accounts
    return store


def auth_config(request: Request) -> AuthConfig:
    config: AuthConfig = request.app.state.runtime.auth
    return config


async def _key_principal(request: Request, key: str) -> Principal:
    key_digest = digest(key)
    hit, record = _keys.get(key_digest)
    store = accounts(request)
    if not hit:
        record = await run_in_threadpool(store.api_key, key)
        if record is not None:
            _keys.put(key_digest, record)
    now = datetime.now(UTC)
    if record is None:
        raise unauthorized("invalid API key")
    if not record.usable(now):
        why = "revoked" if record.revoked_at is not None else "expired"
        await _audit_refusal(request, record, why)
        raise unauthorized(f"API key {why}")
    if record.last_used_at is None or now - record.last_used_at > _TOUCH_EVERY:
        await run_in_threadpool(store.touch_api_key, record.tenant_id, record.id, now)
        _keys.put(key_digest, _touched(record, now))
    scope: Scope = record.scope  # type: ignore[assignment]
    return Principal(
        tenant_id=record.tenant_id,
        key_id=record.id,
        key_maker=record.created_by,
        scope=scope,
        actor=f"key:{record.name}",
        via="key",
    )


async def _audit_refusal(request: Request, record: ApiKey, why: str) -> None:
    """A revoked or expired key still in use is in the tenant's audit log (the key may
    have leaked, or a job was forgotten), at most once a minute per key and process:
    whoever holds the key must not be able to fill the log with it."""
    if _refusals.get(record.id)[0]:
        return
    _refusals.put(record.id, True)
    caller = Principal(
        tenant_id=record.tenant_id,
        key_id=record.id,
        scope="read",
        actor=f"key:{record.name}",
        via="key",
    )
    detail = {"reason": why, "method": request.method, "path": request.url.path[:200]}
    await audit(request, caller, "api_key.refused", "api_key", record.id, detail)


def _touched(record: ApiKey, at: datetime) -> ApiKey:
    return replace(record, last_used_at=at)


async def member_of(request: Request, tenant_id: str, user_id: str) -> Member | None:
    """The user's live membership of the tenant (None when removed or disabled)."""
    hit, member = _members.get((tenant_id, user_id))
    if not hit:
        member = await run_in_threadpool(accounts(request).member, tenant_id, user_id)
        _members.put((tenant_id, user_id), member)
    if member is None or member.disabled:
        return None
    return member


async def still_signed_in(request: Request, claims: Claims) -> bool:
    """Whether the token's sign-in has not logged out (cached briefly, as members)."""
    if claims.session is None:
        return True
    key = (claims.tenant_id, claims.session)
    hit, alive = _sessions.get(key)
    if not hit:
        alive = await run_in_threadpool(accounts(request).session_alive, *key)
        _sessions.put(key, alive)
    return bool(alive)


async def _session_principal(request: Request, token: str, via: str) -> Principal:
    claims = read_access(auth_config(request), token)
    if claims is None:
        raise unauthorized("invalid or expired session")
    if not await still_signed_in(request, claims):
        raise unauthorized("signed out: log in again")
    member = await member_of(request, claims.tenant_id, claims.user_id)
    if member is None:
        raise unauthorized("no longer a member of this tenant")
    role: Role = member.role  # type: ignore[assignment]
    return Principal(
        tenant_id=claims.tenant_id,
        user_id=claims.user_id,
        role=role,
        actor=f"user:{member.email}",
        email=member.email,
        via="cookie" if via == "cookie" else "bearer",
    )


async def check_csrf(request: Request) -> None:
    """403 unless a state-changing request repeats the CSRF cookie in the header (or
    the form field)."""
    if request.method in _SAFE_METHODS:
        return
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "") or await _form_token(request)
    if not expected or not given or not hmac.compare_digest(expected, given):
        raise HTTPException(403, "missing or wrong CSRF token")


async def _form_token(request: Request) -> str:
    """The ``csrf_token`` field of a url-encoded body ("" for any other body: a
    multipart one sends the header). Read here rather than by Starlette's form parser,
    which needs ``python-multipart``, not a dependency: every form post made with the
    session cookie was answered 500. The body is capped by the app's ``BodyLimit``."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return ""
    text = (await request.body()).decode("utf-8", errors="replace")
    values = parse_qs(text, keep_blank_values=True).get(CSRF_FIELD, [])
    return values[0] if values else ""


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, session: str | None
) -> Principal:
    if credentials is not None and credentials.credentials:
        token = credentials.credentials
        if token.startswith(API_KEY_PREFIX):
            return await _key_principal(request, token)
        return await _session_principal(request, token, "bearer")
    if session:
        principal = await _session_principal(request, session, "cookie")
        await check_csrf(request)
        return principal
    given = request.headers.get("authorization", "")
    if given and not given.lower().startswith("bearer "):
        raise unauthorized("send the key or token as 'Authorization: Bearer <key>'")
    raise unauthorized("missing credentials")

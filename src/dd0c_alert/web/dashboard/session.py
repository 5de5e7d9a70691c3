"""The browser session of the dashboard: who is signed in, the cookies that say so,
and the CSRF check of every state-changing form.

The session cookie (``dd0c_session``) holds a short-lived access token (``sessions``);
``dd0c_refresh`` holds the rotating refresh token that renews it when it expires, so a
page opened after a quarter of an hour still works. ``dd0c_csrf`` is a random value
repeated by every form (double submit); a POST without it, or whose ``Origin`` is not
this site, is refused with 403.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from dd0c_alert.pipeline.auth_config import AuthConfig
from dd0c_alert.storage.accounts import AccountStore

from ..auth import forget_session, member_of, still_signed_in
from ..auth_api import clear_session_cookies, set_session_cookies
from ..permissions import Principal
from ..principal import Role
from ..routing import NUL_REFUSED
from ..sessions import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, issue_access, read_access

REFRESH_COOKIE = "dd0c_refresh"
_RENEWED = "dd0c_renewed"


def auth_config(request: Request) -> AuthConfig:
    config: AuthConfig = request.app.state.runtime.auth
    return config


def accounts(request: Request) -> AccountStore:
    store: AccountStore = request.app.state.accounts
    return store


async def _principal(request: Request, token: str) -> Principal | None:
    claims = read_access(auth_config(request), token) if token else None
    if claims is None or not await still_signed_in(request, claims):
        return None
    member = await member_of(request, claims.tenant_id, claims.user_id)
    if member is None:
        return None
    role: Role = member.role  # type: ignore[assignment]
    return Principal(
        tenant_id=claims.tenant_id,
        user_id=claims.user_id,
        role=role,
        actor=f"user:{member.email}",
        email=member.email,
        via="cookie",
    )


async def signed_in(request: Request) -> Principal | None:
    """The signed-in user, renewing an expired access token with the refresh cookie
    (the new cookies are set by ``finish``); None when nobody is signed in. Does not
    check CSRF: forms call ``checked_form`` for that."""
    principal = await _principal(request, request.cookies.get(SESSION_COOKIE, ""))
    if principal is not None:
        return principal
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        return None
    config, store = auth_config(request), accounts(request)
    rotation = await run_in_threadpool(store.rotate_refresh, refresh, config.refresh_ttl)
    if rotation.outcome != "ok" or rotation.tenant_id is None or rotation.user_id is None:
        return None
    member = await member_of(request, rotation.tenant_id, rotation.user_id)
    if member is None or rotation.token is None or rotation.family_id is None:
        return None
    access = issue_access(config, member.user_id, member.tenant_id, member.role, rotation.family_id)
    setattr(request.state, _RENEWED, (access, rotation.token))
    return await _principal(request, access)


async def still_signed_in_now(request: Request) -> Principal | None:
    """The user this request signed in, as of now: a long answer (the live list's
    stream runs for minutes) asks again before each part it sends, so a member who
    was removed, disabled or logged out stops getting the team's incidents at once
    (within the membership cache's few seconds in another process), not when the
    stream ends. Reads the access token the request authenticated with (renewed or
    not) and renews nothing: its refresh token was spent once already."""
    renewed: tuple[str, str] | None = getattr(request.state, _RENEWED, None)
    token = renewed[0] if renewed is not None else request.cookies.get(SESSION_COOKIE, "")
    return await _principal(request, token)


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (a new one when it has none yet; ``finish`` sets it)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf_new", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.csrf_new = token
    return str(token)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or auth_config(request).public_url.startswith("https:")


async def start_session(request: Request, user_id: str, tenant_id: str, role: str) -> None:
    """Sign the browser in (cookies set by ``finish``)."""
    config = auth_config(request)
    refresh = await run_in_threadpool(
        accounts(request).issue_refresh, tenant_id, user_id, config.refresh_ttl
    )
    access = issue_access(config, user_id, tenant_id, role, refresh.family_id)
    setattr(request.state, _RENEWED, (access, refresh.token))
    request.state.started = True
    request.state.ended = False


def _cookie(request: Request, response: Response, name: str, value: str, ttl: timedelta) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(ttl.total_seconds()),
        path="/",
        httponly=name != CSRF_COOKIE,  # the page's script repeats the CSRF token
        secure=_secure(request),
        samesite="lax",
    )


def finish(request: Request, response: Response) -> Response:
    """Set the cookies this request decided on: a new session (the accounts API's
    ``set_session_cookies``: session cookie and a fresh CSRF token), a renewed one, a
    first CSRF token, or the removal of the session (``end_session``). The CSRF
    cookie lives as long as the refresh token, so a page left open past the access
    token's quarter of an hour still posts its forms.

    Once per request (``PageRoute`` calls it again on whatever a view returns): a
    renewal spent the browser's refresh token, so an answer without the new cookies
    (the live list's stream, a poll) would leave the browser a spent token whose
    next use revokes the whole sign-in as stolen."""
    if getattr(request.state, "finished", False):
        return response
    request.state.finished = True
    config = auth_config(request)
    renewed: tuple[str, str] | None = getattr(request.state, _RENEWED, None)
    csrf = getattr(request.state, "csrf_new", None)
    if getattr(request.state, "ended", False):
        clear_session_cookies(response)
        response.delete_cookie(REFRESH_COOKIE, path="/")
        csrf = None
    elif renewed is not None:
        access, refresh = renewed
        if getattr(request.state, "started", False):
            csrf = set_session_cookies(response, request, access, config)
        else:
            _cookie(request, response, SESSION_COOKIE, access, config.access_ttl)
            csrf = csrf or request.cookies.get(CSRF_COOKIE)
        _cookie(request, response, REFRESH_COOKIE, refresh, config.refresh_ttl)
    if csrf:  # last Set-Cookie of a name wins: this lifetime replaces the helper's
        _cookie(request, response, CSRF_COOKIE, csrf, config.refresh_ttl)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def end_session(request: Request) -> None:
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:
        ended = await run_in_threadpool(accounts(request).revoke_refresh, refresh)
        if ended is not None:
            forget_session(*ended)
    request.state.ended = True


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None  # no header (old clients, curl): the token alone decides
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    public = urlsplit(auth_config(request).public_url).netloc
    return parts.netloc in {host, public}


Form = dict[str, str]


async def read_form(request: Request) -> Form:
    """An ``application/x-www-form-urlencoded`` body (every form of the dashboard):
    the first value of each field. Bodies are capped by the app's ``BodyLimit``."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    text = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    if any("\x00" in k or "\x00" in v for k, v in form.items()):  # PostgreSQL cannot store it
        raise HTTPException(400, f"a field of the form is not valid: {NUL_REFUSED}")
    return form


async def checked_form(request: Request) -> Form:
    """The posted form, after the CSRF checks: 403 unless the ``csrf_token`` field
    equals the CSRF cookie and the request comes from this site."""
    form = await read_form(request)
    given = form.get(CSRF_FIELD)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(given, str) or not expected or not hmac.compare_digest(given, expected):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    if not _same_origin(request):
        raise HTTPException(403, "a form of another site may not act here")
    return form


def field(form: Form, name: str, default: str = "") -> str:
    return form.get(name, default).strip()

"""Accounts over REST: sign-up, login, refresh, logout, password change and reset,
tenant switch, ``/v1/me``; the team (users, invitations) and API keys.

Login answers the same 401 for an unknown email and a wrong password (and spends
the same argon2 work on both); failures are throttled per account and per client
address (429 ``too_many_attempts`` with ``Retry-After``). Sign-ups and invitations
accepted with a new password are counted per client address too: each costs an
argon2 hash, and nobody has signed in to ask for it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator
from starlette.background import BackgroundTask

from dd0c_alert.notify.smtp import SmtpSender
from dd0c_alert.pipeline.auth_config import AuthConfig
from dd0c_alert.storage.account_rows import (
    API_KEY_PREFIX,
    EmailTaken,
    LastOwner,
    Revoked,
    User,
    digest,
    normalise_email,
)
from dd0c_alert.storage.accounts import AccountStore

from . import auth
from .audit import audit
from .auth import (
    accounts,
    auth_config,
    forget_key,
    forget_member,
    forget_session,
    forget_sessions,
    unauthorized,
)
from .passwords import WeakPassword, check_strength, hash_password, verify_password
from .permissions import Principal, grantable_scopes, invitable_roles, require
from .responses import error_response, json_response
from .routing import JsonRoute
from .sessions import CSRF_COOKIE, SESSION_COOKIE, Claims, issue_access, read_access
from .types import ApiTime

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["accounts"], route_class=JsonRoute)

Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
RoleName = Literal["owner", "admin", "member", "viewer"]


class SignupIn(BaseModel):
    email: Email
    password: Password
    tenant_name: str = Field(min_length=1, max_length=200)


class LoginIn(BaseModel):
    email: Email
    password: Password
    tenant_id: str | None = None


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=200)


class PasswordChangeIn(BaseModel):
    current_password: Password
    new_password: Password


class ResetRequestIn(BaseModel):
    email: Email


class ResetIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    password: Password


class SwitchIn(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)


class RolePatch(BaseModel):
    role: RoleName


class InvitationIn(BaseModel):
    email: Email
    role: RoleName = "member"


class AcceptIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    password: Password | None = None


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["read", "write", "admin"]
    expires_at: ApiTime | None = None

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        """A key that has already expired would be shown once and never work."""
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("expires_at is in the past: a key must expire later than now")
        return value


class Tokens(BaseModel):
    tenant_id: str
    user_id: str
    role: str
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int
    tenants: list[dict[str, Any]] = Field(default_factory=list)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttle_keys(request: Request, email: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """The login throttle's counters for a login attempt, with their limits: the
    account's (the email as stored, so its case and spaces make no other counter)
    and the client address's."""
    config = auth_config(request)
    return (
        ("account:" + digest(normalise_email(email)), config.failures_per_account),
        ("address:" + _client(request), config.failures_per_address),
    )


async def new_password_wait(request: Request) -> float:
    """Seconds before this client address may set another password without being
    signed in (0: go on; the attempt is then counted). Without a budget, sign-ups
    from one address ran as many argon2 hashes as they liked, each 64 MiB and a few
    hundred milliseconds of CPU, and read which emails had an account as fast."""
    config = auth_config(request)
    throttle = request.app.state.runtime.login_throttle
    key = "new-password:" + _client(request)
    window = config.throttle_window.total_seconds()
    limit = config.new_passwords_per_address
    wait: float = await run_in_threadpool(throttle.retry_after, key, limit, window)
    if wait <= 0:
        await run_in_threadpool(throttle.fail, key, window)
    return wait


def _too_many(wait: float, what: str) -> Response:
    return error_response(
        429,
        "too_many_attempts",
        f"too many {what} from this address; try again later",
        {"Retry-After": str(int(wait) + 1)},
    )


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt found: ``wait`` seconds > 0 when the throttle refuses
    it; else the ``user`` and their memberships, or no user when the email and
    password do not sign anyone in."""

    wait: float = 0.0
    user: User | None = None
    tenants: list[dict[str, Any]] = field(default_factory=list)


async def check_credentials(request: Request, email: str, password: str) -> SignIn:
    """The login throttle, the password and the memberships, for the API and the
    dashboard's form alike: one budget of guesses counted on the same keys (each
    used to grant its own), and the throttle asked off the event loop (it may be
    Redis)."""
    throttle = request.app.state.runtime.login_throttle
    window = auth_config(request).throttle_window.total_seconds()
    keys = _throttle_keys(request, email)
    waits = [
        await run_in_threadpool(throttle.retry_after, key, limit, window) for key, limit in keys
    ]
    if max(waits) > 0:
        return SignIn(wait=max(waits))
    store = accounts(request)
    user = await run_in_threadpool(store.user_by_email, email)
    ok = await run_in_threadpool(verify_password, user.password_hash if user else None, password)
    tenants = await run_in_threadpool(store.tenants_of, user.id) if user and ok else []
    if user is None or not ok or user.disabled or not tenants:
        for key, _ in keys:
            await run_in_threadpool(throttle.fail, key, window)
        return SignIn()
    await run_in_threadpool(throttle.clear, keys[0][0])  # the account's; not the address's
    return SignIn(user=user, tenants=tenants)


def set_session_cookies(
    response: Response, request: Request, access_token: str, config: AuthConfig
) -> str:
    """For the dashboard: the access token in an ``HttpOnly``, ``SameSite=Lax``
    cookie and a fresh CSRF token in a readable one, whose value state-changing
    requests repeat in ``X-CSRF-Token``. Returns the CSRF token. Both are ``Secure``
    when the request came over https or the public URL is https: behind the TLS proxy
    the app itself is reached over plain http, and the session token must still
    never travel unencrypted."""
    secure = request.url.scheme == "https" or config.public_url.startswith("https:")
    max_age = int(config.access_ttl.total_seconds())
    csrf = secrets.token_urlsafe(32)
    response.set_cookie(
        SESSION_COOKIE,
        access_token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="lax", secure=secure
    )
    return csrf


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


async def _tokens(request: Request, user_id: str, tenant_id: str, role: str) -> dict[str, Any]:
    config = auth_config(request)
    store = accounts(request)
    refresh = await run_in_threadpool(store.issue_refresh, tenant_id, user_id, config.refresh_ttl)
    tenants = await run_in_threadpool(store.tenants_of, user_id)
    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "role": role,
        "access_token": issue_access(config, user_id, tenant_id, role, refresh.family_id),
        "refresh_token": refresh.token,
        "token_type": "bearer",
        "expires_in": int(config.access_ttl.total_seconds()),
        "tenants": tenants,
    }


def _weak(exc: WeakPassword) -> Response:
    return error_response(422, "weak_password", str(exc))


async def _send_mail(config: AuthConfig, to: str, subject: str, body: str) -> None:
    if config.smtp is None:
        log.warning("mail_not_configured", subject=subject)
        return
    message = EmailMessage()
    message["From"] = config.mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    try:
        await SmtpSender(config.smtp).send(message)
    except Exception as exc:  # a mail that cannot go out must not fail the request
        log.warning("mail_failed", subject=subject, error=type(exc).__name__)


@router.post(
    "/auth/signup",
    status_code=201,
    response_model=Tokens,
    responses={
        403: {"description": "`signup_disabled`: `DD0C_SIGNUP_ENABLED` is off."},
        409: {"description": "`email_in_use`: an account with this email exists."},
        429: {"description": "Too many sign-ups from this address (`too_many_attempts`)."},
    },
    summary="Sign up",
)
async def signup(request: Request, body: SignupIn) -> Response | dict[str, Any]:
    """A new tenant with the caller as its owner (when ``DD0C_SIGNUP_ENABLED``)."""
    config = auth_config(request)
    if not config.signup_enabled:
        return error_response(403, "signup_disabled", "sign-up is turned off here")
    try:
        check_strength(body.password, body.email)
    except WeakPassword as exc:
        return _weak(exc)
    wait = await new_password_wait(request)
    if wait > 0:
        return _too_many(wait, "sign-ups")
    password_hash = await run_in_threadpool(hash_password, body.password)
    try:
        tenant, user = await run_in_threadpool(
            accounts(request).signup, body.tenant_name, body.email, password_hash
        )
    except EmailTaken:
        return error_response(409, "email_in_use", "an account with this email exists")
    return await _tokens(request, user.id, tenant.id, "owner")


@router.post(
    "/auth/login",
    response_model=Tokens,
    responses={
        401: {"description": "`unauthorized`: wrong email or password, or not a member."},
        429: {"description": "Too many failed attempts (`too_many_attempts`)."},
    },
    summary="Log in with email and password",
)
async def login(request: Request, body: LoginIn) -> Response | dict[str, Any]:
    found = await check_credentials(request, body.email, body.password)
    if found.wait > 0:
        return error_response(
            429,
            "too_many_attempts",
            "too many failed logins; try again later",
            {"Retry-After": str(int(found.wait) + 1)},
        )
    user, tenants = found.user, found.tenants
    if user is None:
        raise unauthorized("wrong email or password")
    chosen = next((m for m in tenants if m["tenant_id"] == body.tenant_id), None)
    if body.tenant_id is not None and chosen is None:
        raise unauthorized("not a member of that tenant")
    chosen = chosen or tenants[0]
    return await _tokens(request, user.id, chosen["tenant_id"], chosen["role"])


@router.post(
    "/auth/refresh",
    response_model=Tokens,
    responses={401: {"description": "`unauthorized`: an invalid, spent or expired token."}},
    summary="A new token pair for a refresh token",
)
async def refresh(request: Request, body: RefreshIn) -> dict[str, Any]:
    """The refresh token is spent; presenting a spent one again revokes its family."""
    config = auth_config(request)
    store = accounts(request)
    rotation = await run_in_threadpool(store.rotate_refresh, body.refresh_token, config.refresh_ttl)
    if rotation.outcome != "ok" or rotation.token is None:
        raise unauthorized("invalid refresh token")
    assert rotation.tenant_id is not None and rotation.user_id is not None
    assert rotation.family_id is not None
    member = await auth.member_of(request, rotation.tenant_id, rotation.user_id)
    if member is None:
        await run_in_threadpool(store.revoke_refresh, rotation.token)
        raise unauthorized("no longer a member of this tenant")
    return {
        "tenant_id": rotation.tenant_id,
        "user_id": rotation.user_id,
        "role": member.role,
        "access_token": issue_access(
            config, rotation.user_id, rotation.tenant_id, member.role, rotation.family_id
        ),
        "refresh_token": rotation.token,
        "token_type": "bearer",
        "expires_in": int(config.access_ttl.total_seconds()),
        "tenants": [],
    }


@router.post("/auth/logout", status_code=204, summary="Log out: end the sign-in")
async def logout(request: Request, body: LogoutIn | None = None) -> Response:
    """Ends the sign-in of the refresh token sent, and that of the access token the
    request carries (``Authorization: Bearer`` or the session cookie): a client that
    logs out with its access token alone must not stay signed in."""
    store = accounts(request)
    if body is not None and body.refresh_token:
        ended = await run_in_threadpool(store.revoke_refresh, body.refresh_token)
        if ended is not None:
            forget_session(*ended)
    claims = _presented_claims(request)
    if claims is not None and claims.session is not None:
        await run_in_threadpool(store.end_session, claims.tenant_id, claims.session)
        forget_session(claims.tenant_id, claims.session)
    response = Response(status_code=204)
    clear_session_cookies(response)
    return response


def _presented_claims(request: Request) -> Claims | None:
    """The claims of a valid access token the request carries, if any."""
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or token.startswith(API_KEY_PREFIX):
        token = ""
    token = token.strip() or request.cookies.get(SESSION_COOKIE, "")
    return read_access(auth_config(request), token) if token else None


@router.post("/auth/password", status_code=204, summary="Change the password")
async def change_password(
    request: Request,
    principal: Annotated[Principal, require("self")],
    body: PasswordChangeIn,
) -> Response:
    """Every refresh token of the user is revoked (log in again elsewhere)."""
    if principal.user_id is None:
        return error_response(403, "forbidden", "API keys have no password")
    store = accounts(request)
    user = await run_in_threadpool(store.get_user, principal.user_id)
    ok = await run_in_threadpool(
        verify_password, user.password_hash if user else None, body.current_password
    )
    if user is None or not ok:
        raise unauthorized("wrong current password")
    try:
        check_strength(body.new_password, user.email)
    except WeakPassword as exc:
        return _weak(exc)
    new_hash = await run_in_threadpool(hash_password, body.new_password)
    await run_in_threadpool(store.set_password, user.id, new_hash)
    forget_sessions()
    return Response(status_code=204)


@router.post(
    "/auth/reset-request",
    status_code=202,
    response_class=Response,
    summary="Mail a password reset link",
)
async def reset_request(request: Request, body: ResetRequestIn) -> Response:
    """Always 202, whether or not the account exists, and as fast either way: the link
    is made and mailed after the answer has gone (a database write and an SMTP
    exchange made only for known addresses would tell them apart by the time taken)."""
    task = BackgroundTask(mail_reset_link, auth_config(request), accounts(request), body.email)
    return Response(status_code=202, background=task)


async def mail_reset_link(config: AuthConfig, store: AccountStore, email: str) -> None:
    """Mail a reset link to the account of ``email``, if there is one that may sign in."""
    user = await run_in_threadpool(store.user_by_email, email)
    if user is None or user.disabled:
        return
    token = await run_in_threadpool(store.create_reset, user.id, config.reset_ttl)
    link = f"{config.public_url.rstrip('/')}/reset?token={token}"
    minutes = int(config.reset_ttl.total_seconds() // 60)
    await _send_mail(
        config,
        user.email,
        "Reset your dd0c/alert password",
        f"Someone asked to reset the password of {user.email}.\n\n"
        f"Set a new password here (valid for {minutes} minutes):\n{link}\n\n"
        "If it was not you, ignore this mail.\n",
    )


@router.post(
    "/auth/reset",
    status_code=204,
    responses={401: {"description": "`unauthorized`: an invalid or expired reset link."}},
    summary="Set a new password with a reset link",
)
async def reset(request: Request, body: ResetIn) -> Response:
    store = accounts(request)
    try:
        check_strength(body.password)
    except WeakPassword as exc:
        return _weak(exc)
    user_id = await run_in_threadpool(store.spend_reset, body.token)
    if user_id is None:
        raise unauthorized("invalid or expired reset link")
    new_hash = await run_in_threadpool(hash_password, body.password)
    await run_in_threadpool(store.set_password, user_id, new_hash)
    forget_sessions()
    return Response(status_code=204)


@router.post(
    "/auth/switch",
    response_model=Tokens,
    responses={404: {"description": "`not_found`: the user is no member of that tenant."}},
    summary="Switch to another tenant",
)
async def switch(
    request: Request, principal: Annotated[Principal, require("self")], body: SwitchIn
) -> dict[str, Any]:
    if principal.user_id is None:
        raise HTTPException(403, "API keys belong to one tenant")
    member = await auth.member_of(request, body.tenant_id, principal.user_id)
    if member is None:
        raise HTTPException(404, "no such tenant")
    return await _tokens(request, principal.user_id, body.tenant_id, member.role)


@router.get("/me", summary="Who is calling")
async def me(request: Request, principal: Annotated[Principal, require("self")]) -> dict[str, Any]:
    tenants: list[dict[str, Any]] = []
    if principal.user_id is not None:
        tenants = await run_in_threadpool(accounts(request).tenants_of, principal.user_id)
    return {
        "tenant_id": principal.tenant_id,
        "user_id": principal.user_id,
        "email": principal.email,
        "key_id": principal.key_id,
        "role": principal.role,
        "scope": principal.scope,
        "actor": principal.actor,
        "tenants": tenants,
    }


# --- the team --------------------------------------------------------------------------


def _member_doc(member: Any) -> dict[str, Any]:
    return {
        "id": member.user_id,
        "email": member.email,
        "role": member.role,
        "disabled": member.disabled,
        "joined_at": member.created_at,
    }


@router.get("/users", summary="Members of the tenant")
async def list_users(
    request: Request, principal: Annotated[Principal, require("users:read")]
) -> dict[str, Any]:
    members = await run_in_threadpool(accounts(request).members, principal.tenant_id)
    return {"items": [_member_doc(m) for m in members], "next_cursor": None}


def _check_owner_rules(principal: Principal, target_role: str | None, new_role: str | None) -> None:
    """Admins manage members, admins and viewers, never owners; only an owner makes
    or unmakes an owner. An API key is no owner, whatever its scope: an admin may
    create an admin-scoped key, and through it would otherwise promote themselves
    and demote the owners (``tenant:owner`` is refused to keys for the same reason)."""
    if principal.role == "owner":
        return
    if target_role == "owner" or new_role == "owner":
        raise HTTPException(403, "only an owner may change an owner")


_LAST_OWNER: dict[int | str, dict[str, Any]] = {
    409: {"description": "`conflict`: a tenant keeps at least one owner."}
}


@router.patch("/users/{user_id}", responses=_LAST_OWNER, summary="Change a member's role")
async def patch_user(
    request: Request,
    principal: Annotated[Principal, require("users:admin")],
    user_id: str,
    body: RolePatch,
) -> dict[str, Any]:
    store = accounts(request)
    member = await run_in_threadpool(store.member, principal.tenant_id, user_id)
    if member is None:
        raise HTTPException(404, "no such user")
    _check_owner_rules(principal, member.role, body.role)
    try:
        revoked = await run_in_threadpool(
            store.set_role,
            principal.tenant_id,
            user_id,
            body.role,
            grantable_scopes(body.role),
            invitable_roles(body.role),
        )
    except LastOwner:
        raise HTTPException(409, "a tenant keeps at least one owner") from None
    if revoked is None:
        raise HTTPException(404, "no such user")
    forget_member(principal.tenant_id, user_id)
    updated = await run_in_threadpool(store.member, principal.tenant_id, user_id)
    await audit(request, principal, "user.role", "user", user_id, {"role": body.role})
    await _audit_revoked(request, principal, revoked, user_id, "creator_demoted")
    return _member_doc(updated)


async def _audit_revoked(
    request: Request, principal: Principal, revoked: Revoked, user_id: str, reason: str
) -> None:
    """The keys and invitations a removal or demotion revoked with it: each in the
    audit log as a revocation by the caller, with why; the keys dropped from this
    process's key cache (other processes refuse them within its few seconds)."""
    detail = {"reason": reason, "created_by": user_id}
    if revoked.keys:
        forget_key()
    for key_id in revoked.keys:
        await audit(request, principal, "api_key.revoke", "api_key", key_id, detail)
    for invitation_id in revoked.invitations:
        await audit(request, principal, "invitation.revoke", "invitation", invitation_id, detail)


@router.delete(
    "/users/{user_id}",
    status_code=204,
    responses=_LAST_OWNER,
    summary="Remove a member from the tenant",
)
async def delete_user(
    request: Request, principal: Annotated[Principal, require("users:admin")], user_id: str
) -> Response:
    store = accounts(request)
    member = await run_in_threadpool(store.member, principal.tenant_id, user_id)
    if member is None:
        raise HTTPException(404, "no such user")
    _check_owner_rules(principal, member.role, None)
    try:
        revoked = await run_in_threadpool(store.remove_member, principal.tenant_id, user_id)
    except LastOwner:
        raise HTTPException(409, "a tenant keeps at least one owner") from None
    if revoked is None:
        raise HTTPException(404, "no such user")
    forget_member(principal.tenant_id, user_id)
    await audit(request, principal, "user.remove", "user", user_id)
    await _audit_revoked(request, principal, revoked, user_id, "creator_removed")
    return Response(status_code=204)


@router.post("/invitations", status_code=201, summary="Invite someone by email")
async def invite(
    request: Request, principal: Annotated[Principal, require("users:admin")], body: InvitationIn
) -> dict[str, Any]:
    _check_owner_rules(principal, None, body.role)
    config = auth_config(request)
    token, invitation = await run_in_threadpool(
        accounts(request).create_invitation,
        principal.tenant_id,
        body.email,
        body.role,
        principal.actor,
        config.invitation_ttl,
        principal.user_id or principal.key_maker,
    )
    tenant = await run_in_threadpool(
        request.app.state.runtime.store.get_tenant, principal.tenant_id
    )
    link = f"{config.public_url.rstrip('/')}/invite?token={token}"
    await _send_mail(
        config,
        invitation.email,
        f"You are invited to {tenant.name if tenant else 'a team'} on dd0c/alert",
        f"{principal.actor.partition(':')[2]} invited you to join "
        f"{tenant.name if tenant else 'their team'} as {body.role}.\n\n"
        f"Accept here (valid for {config.invitation_ttl.days} days):\n{link}\n",
    )
    await audit(
        request, principal, "invitation.create", "invitation", invitation.id, {"role": body.role}
    )
    return invitation.public()


@router.get("/invitations", summary="Invitations of the tenant")
async def list_invitations(
    request: Request, principal: Annotated[Principal, require("users:read")]
) -> dict[str, Any]:
    found = await run_in_threadpool(accounts(request).invitations, principal.tenant_id)
    return {"items": [i.public() for i in found], "next_cursor": None}


@router.delete(
    "/invitations/{invitation_id}",
    status_code=204,
    responses={404: {"description": "`not_found`: no pending invitation of the tenant."}},
    summary="Revoke a pending invitation",
)
async def revoke_invitation(
    request: Request, principal: Annotated[Principal, require("users:admin")], invitation_id: str
) -> Response:
    """Its link is refused from now on, as an unknown one. Who may invite to a role may
    revoke such an invitation (an owner's only an owner); an accepted one is 404:
    remove the member instead."""
    store = accounts(request)
    found = await run_in_threadpool(store.invitations, principal.tenant_id)
    invitation = next((i for i in found if i.id == invitation_id), None)
    if invitation is None or invitation.accepted_at is not None:
        raise HTTPException(404, "no such pending invitation")
    _check_owner_rules(principal, None, invitation.role)
    if not await run_in_threadpool(store.revoke_invitation, principal.tenant_id, invitation_id):
        raise HTTPException(404, "no such pending invitation")  # accepted meanwhile
    detail = {"email": invitation.email, "role": invitation.role}
    await audit(request, principal, "invitation.revoke", "invitation", invitation_id, detail)
    return Response(status_code=204)


@router.post(
    "/invitations/accept",
    response_model=Tokens,
    responses={
        202: {
            "description": "Joined, but the email has an account and `password` was not "
            "its password: no tokens; log in with the account's password "
            "(`login_required`)."
        },
        401: {"description": "`unauthorized`: an invalid or expired invitation."},
        429: {"description": "Too many new passwords from this address (`too_many_attempts`)."},
    },
    summary="Accept an invitation",
)
async def accept_invitation(request: Request, body: AcceptIn) -> Response | dict[str, Any]:
    """Creates the account when the email has none (``password`` needed then). When
    it has one, the link makes the account a member but signs nobody in without the
    account's own password (as the dashboard's form): an invitation link travels
    further than a reset link and lives a week, and its tokens would reach every
    other tenant of the account through ``/auth/switch``."""
    password_hash = None
    if body.password is not None:
        try:
            check_strength(body.password)
        except WeakPassword as exc:
            return _weak(exc)
        wait = await new_password_wait(request)
        if wait > 0:
            return _too_many(wait, "new passwords")
        password_hash = await run_in_threadpool(hash_password, body.password)
    try:
        accepted = await run_in_threadpool(
            accounts(request).accept_invitation, body.token, password_hash
        )
    except ValueError as exc:
        return error_response(422, "password_required", str(exc))
    if accepted is None:
        raise unauthorized("invalid or expired invitation")
    invitation, user = accepted
    forget_member(invitation.tenant_id, user.id)
    member = await auth.member_of(request, invitation.tenant_id, user.id)
    role = member.role if member else invitation.role
    if not await _proven(user, password_hash, body.password):
        return json_response(
            {"tenant_id": invitation.tenant_id, "role": role, "login_required": True}, 202
        )
    return await _tokens(request, user.id, invitation.tenant_id, role)


async def _proven(user: User, created_with: str | None, password: str | None) -> bool:
    """Whether the accepting caller is the account's owner: it was created just now
    with their password, or they gave its password."""
    if created_with is not None and user.password_hash == created_with:
        return True
    if not password:
        return False
    return await run_in_threadpool(verify_password, user.password_hash, password)


# --- API keys --------------------------------------------------------------------------


@router.post("/api-keys", status_code=201, summary="Create an API key (shown once)")
async def create_key(
    request: Request, principal: Annotated[Principal, require("keys:admin")], body: ApiKeyIn
) -> dict[str, Any]:
    key, record = await run_in_threadpool(
        accounts(request).create_api_key,
        principal.tenant_id,
        body.name,
        body.scope,
        body.expires_at,
        # Made with a key: its maker's, so that person's removal revokes it too (a
        # key made by a key of nobody, as the command line's, is nobody's).
        principal.user_id or principal.key_maker,
    )
    detail = {"name": body.name, "scope": body.scope}  # never the key
    await audit(request, principal, "api_key.create", "api_key", record.id, detail)
    return {**record.public(), "key": key}


@router.get("/api-keys", summary="API keys of the tenant (never their secret)")
async def list_keys(
    request: Request, principal: Annotated[Principal, require("keys:admin")]
) -> dict[str, Any]:
    found = await run_in_threadpool(accounts(request).api_keys, principal.tenant_id)
    return {"items": [k.public() for k in found], "next_cursor": None}


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_key(
    request: Request, principal: Annotated[Principal, require("keys:admin")], key_id: str
) -> Response:
    revoked = await run_in_threadpool(accounts(request).revoke_api_key, principal.tenant_id, key_id)
    if revoked is None:
        raise HTTPException(404, "no such API key")
    if revoked:  # revoking it again changes nothing, and is not audited again
        forget_key()  # other processes drop it within their cache's few seconds
        await audit(request, principal, "api_key.revoke", "api_key", key_id)
    return Response(status_code=204)

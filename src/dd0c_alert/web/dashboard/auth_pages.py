"""Sign-up, login, logout, tenant switch and invitation acceptance: plain HTML forms
that work without JavaScript and end in the session cookies (``session``)."""

from __future__ import annotations

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from dd0c_alert.storage.account_rows import EmailTaken

from .. import auth_api
from ..passwords import WeakPassword, check_strength, hash_password, verify_password
from .render import page, page_router, redirect
from .session import (
    accounts,
    auth_config,
    checked_form,
    end_session,
    field,
    signed_in,
    start_session,
)

router = page_router()


@router.get("/")
async def home(request: Request) -> Response:
    return redirect(request, "/incidents" if await signed_in(request) else "/login")


@router.get("/login")
async def login_form(request: Request) -> Response:
    return page(
        request, "login.html", None, signup=auth_config(request).signup_enabled, next=_next(request)
    )


def _next(request: Request, given: str = "") -> str:
    """Where to go after logging in: a path of this site only."""
    target = given or request.query_params.get("next", "")
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/incidents"


@router.post("/login")
async def login(request: Request) -> Response:
    form = await checked_form(request)
    email, password = field(form, "email"), str(form.get("password") or "")
    found = await auth_api.check_credentials(request, email, password)
    if found.wait > 0:
        error = f"Too many failed attempts: try again in {int(found.wait) + 1} seconds."
        return page(request, "login.html", None, 429, error=error, email=email)
    user, tenants = found.user, found.tenants
    if user is None:
        error = "Wrong email or password."
        return page(request, "login.html", None, 401, error=error, email=email)
    first = tenants[0]
    await start_session(request, user.id, first["tenant_id"], first["role"])
    return redirect(request, _next(request, field(form, "next")))


def _too_many(wait: float) -> str:
    return f"Too many attempts from your address: try again in {int(wait) + 1} seconds."


@router.get("/signup")
async def signup_form(request: Request) -> Response:
    if not auth_config(request).signup_enabled:
        return page(request, "login.html", None, 404, error="Sign-up is turned off here.")
    return page(request, "signup.html", None)


@router.post("/signup")
async def signup(request: Request) -> Response:
    form = await checked_form(request)
    if not auth_config(request).signup_enabled:
        return page(request, "login.html", None, 404, error="Sign-up is turned off here.")
    email, team = field(form, "email"), field(form, "team_name")
    password = str(form.get("password") or "")
    values = {"email": email, "team_name": team}
    if "@" not in email or not team or len(team) > 200:
        error = "An email address and a team name are needed."
        return page(request, "signup.html", None, 422, error=error, **values)
    try:
        check_strength(password, email)
    except WeakPassword as exc:
        return page(request, "signup.html", None, 422, error=f"Password: {exc}.", **values)
    wait = await auth_api.new_password_wait(request)
    if wait > 0:
        error = _too_many(wait)
        return page(request, "signup.html", None, 429, error=error, **values)
    hashed = await run_in_threadpool(hash_password, password)
    try:
        tenant, user = await run_in_threadpool(accounts(request).signup, team, email, hashed)
    except EmailTaken:
        error = "An account with this email exists: log in instead."
        return page(request, "signup.html", None, 409, error=error, **values)
    await start_session(request, user.id, tenant.id, "owner")
    return redirect(request, "/onboarding")  # the set-up guide; it can be skipped


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    await end_session(request)
    return redirect(request, "/login")


@router.post("/switch")
async def switch_tenant(request: Request) -> Response:
    form = await checked_form(request)
    principal = await signed_in(request)
    if principal is None or principal.user_id is None:
        return redirect(request, "/login")
    wanted = field(form, "tenant_id")
    member = await run_in_threadpool(accounts(request).member, wanted, principal.user_id)
    if member is None or member.disabled:
        return redirect(request, "/incidents")
    await end_session(request)
    await start_session(request, principal.user_id, member.tenant_id, member.role)
    return redirect(request, "/incidents")


@router.get("/invite")
async def invitation_form(request: Request, token: str = "") -> Response:
    return page(request, "invitation.html", None, token=token)


@router.post("/invite")
async def accept_invitation(request: Request) -> Response:
    form = await checked_form(request)
    token, password = field(form, "token"), str(form.get("password") or "")
    hashed = None
    if password:
        try:
            check_strength(password)
        except WeakPassword as exc:
            error = f"Password: {exc}."
            return page(request, "invitation.html", None, 422, token=token, error=error)
        wait = await auth_api.new_password_wait(request)
        if wait > 0:
            return page(request, "invitation.html", None, 429, token=token, error=_too_many(wait))
        hashed = await run_in_threadpool(hash_password, password)
    try:
        accepted = await run_in_threadpool(accounts(request).accept_invitation, token, hashed)
    except ValueError:
        error = "Choose a password for your new account."
        return page(request, "invitation.html", None, 422, token=token, error=error)
    if accepted is None:
        error = "This invitation is unknown, used or expired: ask for a new one."
        return page(request, "invitation.html", None, 404, token=token, error=error)
    invitation, user = accepted
    me = await signed_in(request)
    proven = (
        (hashed is not None and user.password_hash == hashed)  # created just now
        or (me is not None and me.user_id == user.id)
        or await run_in_threadpool(verify_password, user.password_hash, password)
    )
    if not proven:  # an existing account: the link alone does not sign anyone in
        notice = "You joined the team: log in with your existing password."
        return page(request, "login.html", None, notice=notice, email=user.email)
    await start_session(request, user.id, invitation.tenant_id, invitation.role)
    return redirect(request, "/incidents")


@router.get("/reset")
async def reset_form(request: Request, token: str = "") -> Response:
    """Without a token: ask for a link by mail; with one (the mailed link): set a new
    password."""
    return page(request, "reset.html", None, token=token[:200])


@router.post("/reset-request")
async def reset_request(request: Request) -> Response:
    form = await checked_form(request)
    try:
        body = auth_api.ResetRequestIn(email=field(form, "email"))
    except ValidationError:
        return page(request, "reset.html", None, 422, error="Enter your email address.")
    notice = "If an account has this email, a link to set a new password is on its way."
    answer = page(request, "reset.html", None, notice=notice)
    # As the API: the link is made and mailed after the page has gone, so the time
    # taken does not tell a known address from an unknown one.
    answer.background = (await auth_api.reset_request(request, body)).background
    return answer


@router.post("/reset")
async def reset(request: Request) -> Response:
    form = await checked_form(request)
    token = field(form, "token")[:200]
    try:
        body = auth_api.ResetIn(token=token, password=str(form.get("password") or ""))
        answer = await auth_api.reset(request, body)
    except (ValidationError, HTTPException):
        error = "This link is unknown, used or expired: ask for a new one."
        return page(request, "reset.html", None, 400, error=error)
    if answer.status_code != 204:  # a weak password: the link is not spent
        error = "Password: " + orjson.loads(answer.body)["detail"] + "."
        return page(request, "reset.html", None, 422, token=token, error=error)
    notice = "Your password is changed: log in with it."
    return page(request, "login.html", None, notice=notice)

"""The team (members, invitations, roles), API keys, plan usage and the audit log.
Each form calls the REST endpoint's own function (``api_bridge``): the owner rules,
the key shown once and the audit entries are the API's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, Request, Response
from pydantic import ValidationError

from .. import auth_api, product_api
from ..permissions import ROLES, Principal, allowed
from .api_bridge import call, field_errors, posting, reading
from .render import page, page_router, redirect
from .session import auth_config, field

router = page_router()

NOTES = {
    "invited": "Invitation sent.",
    "role": "Role changed.",
    "removed": "Member removed from the team.",
    "revoked": "API key revoked: it is refused from now on.",
    "uninvited": "Invitation revoked: its link no longer works.",
}
SCOPES = ("read", "write", "admin")
AUDIT_PAGE = 50
#: Suggestions for the audit log's action filter (it matches exactly).
AUDIT_ACTIONS = (
    "api_key.create",
    "api_key.refused",
    "api_key.revoke",
    "dead_letter.replay",
    "delivery.replay",
    "incident.ack",
    "incident.feedback",
    "incident.merge",
    "incident.note",
    "incident.reopen",
    "incident.resolve",
    "incident.snooze",
    "incident.split",
    "inhibition.create",
    "inhibition.delete",
    "inhibition.update",
    "integration.create",
    "integration.delete",
    "integration.test",
    "integration.update",
    "invitation.create",
    "invitation.revoke",
    "route.create",
    "route.delete",
    "route.test",
    "route.update",
    "settings.update",
    "silence.create",
    "silence.delete",
    "slack.configure",
    "slack.test",
    "suggestion.accept",
    "suggestion.dismiss",
    "suppression.replay",
    "tenant.create",
    "topology.replace",
    "user.add",
    "user.remove",
    "user.role",
)


# --------------------------------------------------------------------------- team


async def _team_page(
    request: Request,
    me: Principal,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> Response:
    users = await call(auth_api.list_users, request, me)
    invitations = await call(auth_api.list_invitations, request, me)
    now = datetime.now(UTC)
    pending = [
        i for i in invitations.value["items"] if i["accepted_at"] is None and i["expires_at"] > now
    ]
    return page(
        request,
        "config_team.html",
        me,
        status,
        users=users.value["items"],
        invitations=pending,
        roles=ROLES,
        can_admin=allowed("users:admin", me),
        mail=auth_config(request).smtp is not None,
        errors=errors or {},
        values=values or {},
        message=message,
        error=(errors or {}).get("form", ""),
    )


@router.get("/settings/team")
async def team(request: Request, msg: str = "") -> Response:
    me = await reading(request, auth_api.list_users)
    message = NOTES.get(msg, "")
    if msg == "invited" and auth_config(request).smtp is None:
        message = "Invitation recorded, but no email went out: mail is not configured."
    return await _team_page(request, me, message=message)


@router.post("/settings/team/invite")
async def invite(request: Request) -> Response:
    me, form = await posting(request, auth_api.invite)
    values = {"email": field(form, "email"), "role": field(form, "role")}
    try:
        body = auth_api.InvitationIn(email=values["email"], role=values["role"])
    except ValidationError as exc:
        errors = field_errors(exc)
        errors["form"] = "Not invited: see the fields marked below."
        return await _team_page(request, me, errors=errors, values=values, status=422)
    answer = await call(auth_api.invite, request, me, body=body)
    if not answer.ok:
        errors = {"form": f"Not invited: {answer.error}"}
        return await _team_page(request, me, errors=errors, values=values, status=answer.status)
    return redirect(request, "/settings/team?msg=invited")


@router.post("/settings/team/invitations/{invitation_id}/revoke")
async def revoke_invitation(request: Request, invitation_id: str) -> Response:
    me, _ = await posting(request, auth_api.revoke_invitation)
    answer = await call(auth_api.revoke_invitation, request, me, invitation_id=invitation_id)
    if answer.status == 404:
        raise HTTPException(404, answer.error)
    if not answer.ok:
        errors = {"form": f"Not revoked: {answer.error}."}
        return await _team_page(request, me, errors=errors, status=answer.status)
    return redirect(request, "/settings/team?msg=uninvited")


async def _member_change(request: Request, user_id: str, role: str | None) -> Response:
    endpoint = auth_api.patch_user if role is not None else auth_api.delete_user
    me, form = await posting(request, endpoint)
    args: dict[str, Any] = {"user_id": user_id}
    if role is not None:
        try:
            args["body"] = auth_api.RolePatch(role=field(form, "role"))
        except ValidationError:
            errors = {"form": f"Choose one of the roles: {', '.join(ROLES)}."}
            return await _team_page(request, me, errors=errors, status=422)
    answer = await call(endpoint, request, me, **args)
    if answer.status == 404:
        raise HTTPException(404, answer.error)
    if not answer.ok:
        errors = {"form": f"Nothing changed: {answer.error}."}
        return await _team_page(request, me, errors=errors, status=answer.status)
    return redirect(request, f"/settings/team?msg={'role' if role is not None else 'removed'}")


@router.post("/settings/team/{user_id}/role")
async def change_role(request: Request, user_id: str) -> Response:
    return await _member_change(request, user_id, "role")


@router.post("/settings/team/{user_id}/remove")
async def remove(request: Request, user_id: str) -> Response:
    return await _member_change(request, user_id, None)


# --------------------------------------------------------------------------- API keys


async def _keys_page(
    request: Request,
    me: Principal,
    *,
    created: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> Response:
    keys = await call(auth_api.list_keys, request, me)
    now = datetime.now(UTC)
    for key in keys.value["items"]:
        expires = key["expires_at"]
        key["state"] = (
            "revoked"
            if key["revoked_at"] is not None
            else "expired"
            if expires is not None and expires <= now
            else "active"
        )
    return page(
        request,
        "config_keys.html",
        me,
        status,
        keys=keys.value["items"],
        scopes=SCOPES,
        created=created,
        errors=errors or {},
        values=values or {},
        message=message,
        error=(errors or {}).get("form", ""),
    )


@router.get("/settings/api-keys")
async def keys(request: Request, msg: str = "") -> Response:
    me = await reading(request, auth_api.list_keys)
    return await _keys_page(request, me, message=NOTES.get(msg, ""))


@router.post("/settings/api-keys/new")
async def create_key(request: Request) -> Response:
    me, form = await posting(request, auth_api.create_key)
    values = {k: field(form, k) for k in ("name", "scope", "expires_in_days")}
    errors: dict[str, str] = {}
    expires_at = None
    if values["expires_in_days"]:
        try:
            days = int(values["expires_in_days"])
            if not 1 <= days <= 3650:
                raise ValueError
            expires_at = datetime.now(UTC) + timedelta(days=days)
        except ValueError:
            errors["expires_in_days"] = "a whole number of days from 1 to 3650, or empty"
    try:
        body = auth_api.ApiKeyIn(name=values["name"], scope=values["scope"], expires_at=expires_at)
    except ValidationError as exc:
        errors |= field_errors(exc)
    if errors:
        errors["form"] = "No key created: see the fields marked below."
        return await _keys_page(request, me, errors=errors, values=values, status=422)
    answer = await call(auth_api.create_key, request, me, body=body)
    message = "API key created: copy it now, it is shown once."
    return await _keys_page(request, me, created=answer.value, message=message)


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    me, _ = await posting(request, auth_api.revoke_key)
    answer = await call(auth_api.revoke_key, request, me, key_id=key_id)
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return redirect(request, "/settings/api-keys?msg=revoked")


# --------------------------------------------------------------------------- usage, audit


@router.get("/settings/usage")
async def usage(request: Request) -> Response:
    me = await reading(request, product_api.usage)
    found = await call(product_api.usage, request, me)
    return page(request, "config_usage.html", me, usage=found.value)


def _day(text: str, name: str, errors: dict[str, str]) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text[:10]).replace(tzinfo=UTC)
    except ValueError:
        errors[name] = "a date, e.g. 2025-01-31"
        return None


@router.get("/settings/audit")
async def audit_log(request: Request) -> Response:
    me = await reading(request, product_api.list_audit)
    query = request.query_params
    given = {k: query.get(k, "").strip() for k in ("action", "actor", "since", "until", "cursor")}
    given |= {"action": given["action"][:64], "actor": given["actor"][:200]}
    errors: dict[str, str] = {}
    since = _day(given["since"], "since", errors)
    until = _day(given["until"], "until", errors)
    items: list[dict[str, Any]] = []
    next_cursor = None
    if not errors:
        answer = await call(
            product_api.list_audit,
            request,
            me,
            action=given["action"] or None,
            actor=given["actor"] or None,
            since=since,
            until=until + timedelta(days=1) if until else None,
            limit=AUDIT_PAGE,
            cursor=given["cursor"] or None,
        )
        if answer.ok:
            items, next_cursor = answer.value["items"], answer.value["next_cursor"]
        else:
            errors["form"] = f"That page cannot be read ({answer.error}): start again."
    filters = {k: v for k, v in given.items() if k != "cursor" and v}
    return page(
        request,
        "config_audit.html",
        me,
        400 if errors else 200,
        items=items,
        next_cursor=next_cursor,
        given=given,
        filters=filters,
        actions=AUDIT_ACTIONS,
        errors=errors,
        error=errors.get("form", ""),
    )

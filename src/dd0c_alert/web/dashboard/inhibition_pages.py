"""The inhibition rules page: list, create, edit and delete. Each form calls the
inhibitions endpoint's own function (``api_bridge``), so the matcher parser (RE2,
bounded), the limits, the permission and the audit entry are the API's; the parser's
message is shown next to the field it is about."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from .. import config_api
from ..permissions import Principal, allowed
from . import inhibition_preview
from .api_bridge import call, field_errors, operation, posting, reading
from .guard import store_of
from .render import page, page_router, redirect
from .session import field
from .silence_preview import DAYS, SCAN_CAP

router = page_router()

NOTES = {
    "created": "Inhibition rule created.",
    "saved": "Inhibition rule saved.",
    "deleted": "Inhibition rule deleted.",
}
FIELDS = ("source", "target", "equal")


def labels(text: str) -> list[str]:
    """Label names separated by commas or spaces, in order, once each (the API
    bounds how many)."""
    return list(dict.fromkeys(n for n in re.split(r"[\s,]+", text) if n))


def form_of(rule: dict[str, Any]) -> dict[str, str]:
    return {"source": rule["source"], "target": rule["target"], "equal": ", ".join(rule["equal"])}


async def _rules(request: Request, me: Principal) -> list[dict[str, Any]]:
    return list((await call(config_api.list_inhibitions, request, me)).value["items"])


async def _page(
    request: Request,
    me: Principal,
    rules: list[dict[str, Any]],
    *,
    editing: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
    preview: inhibition_preview.InhibitionPreview | None = None,
) -> Response:
    settings = (await call(config_api.get_settings, request, me)).value
    return page(
        request,
        "config_inhibitions.html",
        me,
        status,
        rules=rules,
        editing=editing,
        values=values or {},
        errors=errors or {},
        switched_on=settings["features"]["inhibition"],
        governance=settings["governance_mode"],
        can_write=allowed(operation(config_api.create_inhibition), me),
        message=message,
        error=(errors or {}).get("form", ""),
        preview=preview,
        days=DAYS,
        cap=SCAN_CAP,
    )


@router.get("/settings/inhibitions")
async def inhibitions_page(request: Request, msg: str = "") -> Response:
    me = await reading(request, config_api.list_inhibitions)
    return await _page(request, me, await _rules(request, me), message=NOTES.get(msg, ""))


def _find(rules: list[dict[str, Any]], rule_id: str) -> dict[str, Any]:
    found = next((r for r in rules if r["id"] == rule_id), None)
    if found is None:
        raise HTTPException(404, "no such inhibition rule")
    return found


@router.get("/settings/inhibitions/{rule_id}")
async def inhibition_page(request: Request, rule_id: str) -> Response:
    me = await reading(request, config_api.list_inhibitions)
    rules = await _rules(request, me)
    editing = _find(rules, rule_id)
    return await _page(request, me, rules, editing=editing, values=form_of(editing))


def _checked(
    form: Any, values: dict[str, str], errors: dict[str, str]
) -> config_api.InhibitionIn | None:
    """The form as the API's body, or None with each problem next to its field."""
    try:
        return config_api.InhibitionIn(
            source=field(form, "source"),
            target=field(form, "target"),
            equal=labels(values["equal"]),
        )
    except ValidationError as exc:
        for where, problem in field_errors(exc).items():
            errors.setdefault(where.split(".")[0], problem)
        return None


async def _save(request: Request, rule_id: str | None) -> Response:
    endpoint = config_api.create_inhibition if rule_id is None else config_api.replace_inhibition
    me, form = await posting(request, endpoint)
    rules = await _rules(request, me)
    editing = None if rule_id is None else _find(rules, rule_id)
    values = {name: form.get(name, "") for name in FIELDS}
    errors: dict[str, str] = {}
    body = _checked(form, values, errors)
    if body is not None:
        args: dict[str, Any] = {"body": body}
        if rule_id is not None:
            args["rule_id"] = rule_id
        answer = await call(endpoint, request, me, **args)
        if answer.ok:
            note = "created" if rule_id is None else "saved"
            return redirect(request, f"/settings/inhibitions?msg={note}")
        errors["form"] = f"The rule was not saved: {answer.error}"
    errors.setdefault("form", "The rule was not saved: see the fields marked below.")
    return await _page(
        request, me, rules, editing=editing, values=values, errors=errors, status=422
    )


@router.post("/settings/inhibitions/preview")
async def preview_inhibition(request: Request) -> Response:
    """What the rule in the form would have inhibited in the last days, before it is
    saved; the form keeps what was typed (and the rule being edited, if any)."""
    me, form = await posting(request, config_api.create_inhibition)
    rules = await _rules(request, me)
    editing_id = form.get("editing", "")
    editing = _find(rules, editing_id) if editing_id else None
    values = {name: form.get(name, "") for name in FIELDS}
    errors: dict[str, str] = {}
    body = _checked(form, values, errors)
    if body is None:
        errors.setdefault("form", "Nothing to preview: see the fields marked below.")
        return await _page(
            request, me, rules, editing=editing, values=values, errors=errors, status=422
        )
    found = await run_in_threadpool(
        inhibition_preview.preview,
        store_of(request),
        me.tenant_id,
        config_api.matchers_of(body.source),
        config_api.matchers_of(body.target),
        body.equal,
        datetime.now(UTC),
    )
    return await _page(request, me, rules, editing=editing, values=values, preview=found)


@router.post("/settings/inhibitions/new")
async def create_inhibition(request: Request) -> Response:
    return await _save(request, None)


@router.post("/settings/inhibitions/{rule_id}")
async def save_inhibition(request: Request, rule_id: str) -> Response:
    return await _save(request, rule_id)


@router.post("/settings/inhibitions/{rule_id}/delete")
async def delete_inhibition(request: Request, rule_id: str) -> Response:
    me, _ = await posting(request, config_api.delete_inhibition)
    answer = await call(config_api.delete_inhibition, request, me, rule_id=rule_id)
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return redirect(request, "/settings/inhibitions?msg=deleted")

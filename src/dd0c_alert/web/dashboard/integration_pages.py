"""The integrations page (last received, 24 h counts, test, rename, rotate the
secret, disable, delete) and the dead letters with their replay. Integrations act through
the REST endpoints' functions (``api_bridge``); a secret, new or rotated, is shown
in the answer to the form that made it and never again."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from dd0c_alert.pipeline.dead_letters import replay_dead_letter
from dd0c_alert.providers import PROVIDERS

from .. import integrations_api as api
from ..audit import audit
from ..permissions import Principal, allowed
from .api_bridge import Answer, call, field_errors, posting, reading
from .guard import acting, runtime_of, store_of, viewer
from .render import page, page_router, redirect
from .session import field

router = page_router()

NOTES = {
    "tested": "Test alert sent through the webhook path: it shows in Incidents in a moment.",
    "renamed": "Integration renamed.",
    "enabled": "Integration enabled.",
    "disabled": "Integration disabled: its webhooks are refused until you enable it.",
    "deleted": "Integration deleted.",
    "revoked": "The previous secret is refused from now on (by every server within 5 s).",
    "replayed": "Dead letter put back on the queue: the worker processes it again.",
}
DEAD_LETTERS_SHOWN = 100


async def _page(
    request: Request,
    me: Principal,
    *,
    created: dict[str, Any] | None = None,
    message: str = "",
    error: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    listed = await call(api.list_integrations, request, me)
    return page(
        request,
        "config_integrations.html",
        me,
        status,
        integrations=listed.value["items"],
        providers=sorted(PROVIDERS),
        can_write=allowed("integrations:write", me),
        created=created,
        message=message,
        error=error,
        errors=errors or {},
        values=values or {},
    )


@router.get("/settings/integrations")
async def integrations_page(request: Request, msg: str = "") -> Response:
    me = await reading(request, api.list_integrations)
    return await _page(request, me, message=NOTES.get(msg, ""))


def _shown_once(answer: Answer, rotated: bool) -> dict[str, Any]:
    return {**answer.value, "rotated": rotated}


@router.post("/settings/integrations/new")
async def create(request: Request) -> Response:
    me, form = await posting(request, api.create_integration)
    try:
        body = api.IntegrationIn(provider=field(form, "provider"), name=field(form, "name") or None)
    except ValidationError as exc:
        problems = field_errors(exc)
        where = "source" if "provider" in problems else "name"
        message = f"Integration not created: {where}: {next(iter(problems.values()))}"
        return await _page(request, me, error=message, status=422)
    answer = await call(api.create_integration, request, me, body=body)
    message = "Integration created: copy the secret now, it is shown once."
    return await _page(request, me, created=_shown_once(answer, False), message=message)


async def _update(
    request: Request, integration_id: str, **changes: Any
) -> tuple[Principal, Answer]:
    me, _ = await posting(request, api.update_integration)
    body = api.IntegrationPatch(**changes)
    answer = await call(
        api.update_integration, request, me, integration_id=integration_id, body=body
    )
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return me, answer


@router.post("/settings/integrations/{integration_id}/rename")
async def rename(request: Request, integration_id: str) -> Response:
    """The API's ``Name`` rules and message, shown next to this integration's field
    (the page has one rename field per integration)."""
    me, form = await posting(request, api.update_integration)
    typed = form.get("name", "")
    key = f"rename-{integration_id}"
    try:
        body = api.IntegrationPatch(name=typed)
    except ValidationError as exc:
        problem = next(iter(field_errors(exc).values()))
        return await _page(
            request,
            me,
            error="Integration not renamed: see the field marked below.",
            errors={key: problem},
            values={key: typed},
            status=422,
        )
    answer = await call(
        api.update_integration, request, me, integration_id=integration_id, body=body
    )
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return redirect(request, "/settings/integrations?msg=renamed")


@router.post("/settings/integrations/{integration_id}/rotate")
async def rotate(request: Request, integration_id: str) -> Response:
    me, _ = await posting(request, api.update_integration)
    body = api.IntegrationPatch(rotate_secret=True)
    answer = await call(
        api.update_integration, request, me, integration_id=integration_id, body=body
    )
    if answer.status == 409:  # an earlier rotation's old secret is still accepted
        return await _page(request, me, error=f"Not rotated: {answer.error}", status=409)
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    message = "Secret rotated: copy the new one now, it is shown once."
    return await _page(request, me, created=_shown_once(answer, True), message=message)


@router.post("/settings/integrations/{integration_id}/revoke-previous")
async def revoke_previous(request: Request, integration_id: str) -> Response:
    """A leaked secret rotated out: its grace ends now rather than after a day."""
    await _update(request, integration_id, revoke_previous_secret=True)
    return redirect(request, "/settings/integrations?msg=revoked")


@router.post("/settings/integrations/{integration_id}/enable")
async def enable(request: Request, integration_id: str) -> Response:
    await _update(request, integration_id, enabled=True)
    return redirect(request, "/settings/integrations?msg=enabled")


@router.post("/settings/integrations/{integration_id}/disable")
async def disable(request: Request, integration_id: str) -> Response:
    await _update(request, integration_id, enabled=False)
    return redirect(request, "/settings/integrations?msg=disabled")


@router.post("/settings/integrations/{integration_id}/test")
async def send_test(request: Request, integration_id: str) -> Response:
    me, _ = await posting(request, api.test_integration)
    answer = await call(api.test_integration, request, me, integration_id=integration_id)
    if answer.status == 404:
        raise HTTPException(404, answer.error)
    if not answer.ok:
        return await _page(request, me, error=f"Test alert refused: {answer.error}", status=409)
    return redirect(request, "/settings/integrations?msg=tested")


@router.post("/settings/integrations/{integration_id}/delete")
async def delete(request: Request, integration_id: str) -> Response:
    me, _ = await posting(request, api.delete_integration)
    answer = await call(api.delete_integration, request, me, integration_id=integration_id)
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return redirect(request, "/settings/integrations?msg=deleted")


# --------------------------------------------------------------------------- dead letters

#: Dead letters are failed deliveries of the integrations: read like them; replaying
#: one is the table's "replaying … a failed delivery" (``config:write``).
READ, REPLAY = "integrations:read", "config:write"


@router.get("/settings/dead-letters")
async def dead_letters(request: Request, msg: str = "") -> Response:
    me = await viewer(request)
    if not allowed(READ, me):
        raise HTTPException(403, f"your role may not see this ({READ})")
    store = store_of(request)
    rows = await run_in_threadpool(store.list_dead_letters, me.tenant_id, DEAD_LETTERS_SHOWN)
    return page(
        request,
        "config_dead_letters.html",
        me,
        rows=rows,
        shown=DEAD_LETTERS_SHOWN,
        can_replay=allowed(REPLAY, me),
        message=NOTES.get(msg, ""),
    )


@router.post("/settings/dead-letters/{dead_letter_id}/replay")
async def replay(request: Request, dead_letter_id: str) -> Response:
    me, _ = await acting(request, REPLAY)
    runtime = runtime_of(request)
    event_id = await run_in_threadpool(
        replay_dead_letter, runtime.store, runtime.queue, dead_letter_id, me.tenant_id
    )
    if event_id is None:
        raise HTTPException(404, "no such dead letter")
    await audit(request, me, "dead_letter.replay", "dead_letter", dead_letter_id)
    return redirect(request, "/settings/dead-letters?msg=replayed")

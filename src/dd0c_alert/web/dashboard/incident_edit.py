"""The incident page's editing forms: a note, merging into another incident, splitting
chosen alerts out into a new one.

Each calls the store function the REST API calls and writes the same audit entry, so
the timeline, the suggestion engine's feedback and the audit log cannot tell a click
from an API call. A refused edit (a merged incident, every alert chosen, an unknown
target) shows the incident page again with the reason, answered 409 or 422.
"""

from __future__ import annotations

import functools
from urllib.parse import parse_qs

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from dd0c_alert.storage.ports import InvalidTransition

from ..audit import audit
from ..permissions import Principal
from .guard import acting, store_of
from .incident_pages import incident_view
from .render import page_router, redirect
from .session import field

router = page_router()

#: As the REST API: a note of at most this many characters, a split of at most this
#: many alerts (the page lists at most 1000).
NOTE_LENGTH = 10_000
SPLIT_ALERTS = 1000
_ID_LENGTH = 32


async def _refused(
    request: Request, me: Principal, incident_id: str, status_code: int, error: str
) -> Response:
    return await incident_view(request, me, incident_id, status_code, error=error)


@router.post("/incidents/{incident_id}/note")
async def add_note(request: Request, incident_id: str) -> Response:
    me, form = await acting(request, "incidents:act")
    text = field(form, "text")
    if not text or len(text) > NOTE_LENGTH:
        error = f"Note: write between 1 and {NOTE_LENGTH:,} characters."
        return await _refused(request, me, incident_id, 422, error)
    add = functools.partial(
        store_of(request).add_note, me.tenant_id, incident_id, text, actor=me.actor
    )
    done = await run_in_threadpool(add)
    if done is None:
        return await incident_view(request, me, incident_id)  # answers 404
    await audit(request, me, "incident.note", "incident", incident_id)
    return redirect(request, f"/incidents/{incident_id}?msg=note#timeline-h")


@router.post("/incidents/{incident_id}/merge")
async def merge(request: Request, incident_id: str) -> Response:
    """Into the id typed, else the one picked from the list of open incidents."""
    me, form = await acting(request, "incidents:act")
    into = field(form, "into_id") or field(form, "into")
    if not into or len(into) > _ID_LENGTH:
        error = "Merge: pick an open incident from the list or type an incident id."
        return await _refused(request, me, incident_id, 422, error)
    call = functools.partial(
        store_of(request).merge_incident, me.tenant_id, incident_id, into, actor=me.actor
    )
    try:
        done = await run_in_threadpool(call)
    except InvalidTransition as exc:
        return await _refused(request, me, incident_id, 409, f"Merge: {exc}.")
    if done is None:
        error = f"Merge: this team has no incident {into}."
        return await _refused(request, me, incident_id, 422, error)
    await audit(request, me, "incident.merge", "incident", incident_id, {"into": into})
    return redirect(request, f"/incidents/{into}?msg=merged")


async def _chosen(request: Request) -> list[str]:
    """Every ``alert`` field of the posted form (``checked_form`` keeps one value per
    name; the body is already read and capped)."""
    text = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(text).get("alert", [])


@router.post("/incidents/{incident_id}/split")
async def split(request: Request, incident_id: str) -> Response:
    me, _ = await acting(request, "incidents:act")
    alert_ids = list(dict.fromkeys(await _chosen(request)))
    if not alert_ids or len(alert_ids) > SPLIT_ALERTS:
        error = "Split: tick the alerts to move into a new incident (at most 1000)."
        return await _refused(request, me, incident_id, 422, error)
    if any(len(x) > _ID_LENGTH for x in alert_ids):
        return await _refused(request, me, incident_id, 422, "Split: an alert id is malformed.")
    call = functools.partial(
        store_of(request).split_incident, me.tenant_id, incident_id, alert_ids, actor=me.actor
    )
    try:
        made = await run_in_threadpool(call)
    except InvalidTransition as exc:
        return await _refused(request, me, incident_id, 409, f"Split: {exc}.")
    if made is None:
        return await incident_view(request, me, incident_id)  # answers 404
    detail = {"alerts": len(alert_ids), "into": made["id"]}
    await audit(request, me, "incident.split", "incident", incident_id, detail)
    return redirect(request, f"/incidents/{made['id']}?msg=split")

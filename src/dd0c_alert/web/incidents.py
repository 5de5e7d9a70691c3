"""Incidents of the caller's tenant: list, detail with the reasons behind every
decision, the human actions on them, and the suppression log.

Actions check the incident's status in the same statement that changes it, so an
action that no longer applies (someone, or the engine, got there first) answers 409
``invalid_transition`` instead of silently overwriting.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from dd0c_alert.storage.ports import (
    IncidentAction,
    IncidentFilter,
    InvalidTransition,
    Page,
    Store,
    SuppressionMode,
)

from .api import Alert, AlertDecision, Limit, with_raw_url
from .audit import audit
from .deliveries_api import IncidentDelivery
from .permissions import Principal, require
from .responses import error_response
from .routing import JsonRoute
from .types import ApiTime

router = APIRouter(prefix="/v1", tags=["incidents"], route_class=JsonRoute)

Status = Literal["open", "acknowledged", "resolved"]
Severity = Literal["critical", "high", "medium", "low", "info"]


class DeployCause(BaseModel):
    """A deploy shortly before the incident began: its likely cause."""

    id: str
    service: str
    version: str
    author: str
    title: str
    url: str
    environment: str
    started_at: datetime


class Incident(BaseModel):
    id: str
    status: Status
    severity: Severity
    title: str
    services: list[str]
    alert_count: int
    firing: int = Field(description="Alerts of the incident still firing.")
    noise_score: int = Field(ge=0, le=100)
    noise_reasons: list[str]
    opened_at: datetime = Field(description="Event time of its earliest alert.")
    last_at: datetime = Field(description="Event time of its latest alert.")
    acknowledged_at: datetime | None
    snoozed_until: datetime | None
    resolved_at: datetime | None
    probable_root: str = Field(description="The most upstream affected service.")
    deploys: list[DeployCause]
    flapping: bool = Field(description="Some alert of the incident is flapping.")
    paged: bool = Field(description="The incident asked for a page.")
    merged_into: str | None = Field(
        description="Set when an alert bridged this incident into an older one, which now "
        "holds its alerts: follow it."
    )


class TimelineEntry(BaseModel):
    """A decision of the engine (``kind`` = ``decision``, at the alert's event time) or
    something a person did (at the time they did it)."""

    kind: Literal[
        "decision",
        "ack",
        "resolve",
        "snooze",
        "reopen",
        "feedback",
        "replay",
        "note",
        "merge",
        "split",
    ]
    at: datetime
    incident_id: str = Field(description="Differs when the entry came with a merged incident.")
    decision_id: str | None = None
    alert_id: str | None = None
    outcome: Literal["new_incident", "joined", "late_joined", "dedup", "resolved"] | None = None
    reasons: list[str] = []
    page: bool | None = None
    flapping: bool | None = None
    suppressed_by: str | None = None
    would_suppress: str | None = None
    inhibited_by: str | None = None
    replayed_at: datetime | None = None
    actor: str | None = None
    detail: dict[str, Any] = {}


class Noise(BaseModel):
    score: int
    reasons: list[str] = Field(description="Signed contributions that add up to the score.")


class IncidentDetail(Incident):
    alerts: list[Alert] = Field(description="In event-time order, at most 1000.")
    alerts_truncated: bool
    timeline: list[TimelineEntry]
    timeline_truncated: bool = Field(description="More than 1000 decisions: the first shown.")
    noise: Noise
    deliveries: list[IncidentDelivery] = Field(
        description="Who was notified, oldest first, each with every attempt."
    )


class IncidentPage(BaseModel):
    items: list[Incident]
    next_cursor: str | None


class Snooze(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["noise", "useful"]


class Feedback(BaseModel):
    id: str
    incident_id: str = Field(description="The incident that holds the alerts (after merges).")
    verdict: Literal["noise", "useful"]
    created_at: datetime


class Suppression(AlertDecision):
    mode: SuppressionMode
    rule_id: str
    title: str | None
    service: str | None
    severity: Severity | None


class SuppressionPage(BaseModel):
    items: list[Suppression]
    next_cursor: str | None


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The incident's status does not allow this action."}
}
_NOT_FOUND = "no such incident"


def _store(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


async def _page(call: Any, *args: Any) -> Page:
    try:
        page: Page = await run_in_threadpool(call, *args)
    except ValueError as exc:  # an undecodable cursor
        raise HTTPException(400, str(exc)) from None
    return page


@router.get("/incidents", response_model=IncidentPage, summary="List incidents, newest first")
async def list_incidents(
    request: Request,
    principal: Annotated[Principal, require("incidents:read")],
    status: Status | None = None,
    severity: Severity | None = None,
    service: Annotated[str | None, Query(description="Any of its services")] = None,
    since: Annotated[ApiTime | None, Query(description="opened_at ≥ since")] = None,
    until: Annotated[ApiTime | None, Query(description="opened_at < until")] = None,
    source: Annotated[str | None, Query(max_length=40, description="Any of its alerts")] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Text in title, services or labels"),
    ] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    store = _store(request)
    filters = IncidentFilter(status, severity, service, since, until, source, q)
    page = await _page(store.list_incidents, principal.tenant_id, filters, limit, cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentDetail,
    summary="One incident: alerts, deploys, timeline with reasons, noise score",
)
async def get_incident(
    request: Request, principal: Annotated[Principal, require("incidents:read")], incident_id: str
) -> dict[str, Any]:
    store = _store(request)
    item = await run_in_threadpool(store.get_incident, principal.tenant_id, incident_id)
    if item is None:
        raise HTTPException(404, _NOT_FOUND)
    outbox = request.app.state.runtime.outbox
    deliveries = await run_in_threadpool(
        outbox.incident_deliveries, principal.tenant_id, incident_id
    )
    return {
        **item,
        "alerts": [with_raw_url(a) for a in item["alerts"]],
        "deliveries": deliveries,
    }


async def _act(
    request: Request,
    principal: Principal,
    incident_id: str,
    action: IncidentAction,
    minutes: int = 60,
) -> Response | dict[str, Any]:
    store = _store(request)

    def act() -> dict[str, Any] | None:
        return store.incident_action(
            principal.tenant_id, incident_id, action, minutes, actor=principal.actor
        )

    try:
        item = await run_in_threadpool(act)
    except InvalidTransition as exc:
        return error_response(409, "invalid_transition", str(exc))
    if item is None:
        raise HTTPException(404, _NOT_FOUND)
    await audit(request, principal, f"incident.{action}", "incident", incident_id)
    return item


@router.post(
    "/incidents/{incident_id}/ack",
    response_model=Incident,
    responses=_CONFLICT,
    summary="Acknowledge an open incident",
)
async def ack(
    request: Request, principal: Annotated[Principal, require("incidents:act")], incident_id: str
) -> Response | dict[str, Any]:
    return await _act(request, principal, incident_id, "ack")


@router.post(
    "/incidents/{incident_id}/resolve",
    response_model=Incident,
    responses=_CONFLICT,
    summary="Resolve an open or acknowledged incident",
)
async def resolve(
    request: Request, principal: Annotated[Principal, require("incidents:act")], incident_id: str
) -> Response | dict[str, Any]:
    return await _act(request, principal, incident_id, "resolve")


@router.post(
    "/incidents/{incident_id}/reopen",
    response_model=Incident,
    responses=_CONFLICT,
    summary="Reopen a resolved incident",
)
async def reopen(
    request: Request, principal: Annotated[Principal, require("incidents:act")], incident_id: str
) -> Response | dict[str, Any]:
    return await _act(request, principal, incident_id, "reopen")


@router.post(
    "/incidents/{incident_id}/snooze",
    response_model=Incident,
    responses=_CONFLICT,
    summary="Snooze an open or acknowledged incident (default 60 minutes)",
)
async def snooze(
    request: Request,
    principal: Annotated[Principal, require("incidents:act")],
    incident_id: str,
    body: Snooze | None = None,
) -> Response | dict[str, Any]:
    minutes = (body or Snooze()).minutes
    return await _act(request, principal, incident_id, "snooze", minutes)


@router.post(
    "/incidents/{incident_id}/feedback",
    response_model=Feedback,
    status_code=201,
    summary="Say whether the incident was noise; later incidents' noise scores count it",
)
async def feedback(
    request: Request,
    principal: Annotated[Principal, require("incidents:act")],
    incident_id: str,
    body: FeedbackIn,
) -> dict[str, Any]:
    store = _store(request)
    item = await run_in_threadpool(
        functools.partial(
            store.add_feedback,
            principal.tenant_id,
            incident_id,
            body.verdict,
            actor=principal.actor,
        )
    )
    if item is None:
        raise HTTPException(404, _NOT_FOUND)
    detail = {"verdict": body.verdict}
    await audit(request, principal, "incident.feedback", "incident", incident_id, detail)
    return item


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: str = Field(min_length=1, max_length=32)


@router.post(
    "/incidents/{incident_id}/notes",
    response_model=TimelineEntry,
    status_code=201,
    summary="Add a note to the incident's timeline",
)
async def add_note(
    request: Request,
    principal: Annotated[Principal, require("incidents:act")],
    incident_id: str,
    body: NoteIn,
) -> dict[str, Any]:
    store = _store(request)
    item = await run_in_threadpool(
        functools.partial(
            store.add_note, principal.tenant_id, incident_id, body.text, actor=principal.actor
        )
    )
    if item is None:
        raise HTTPException(404, _NOT_FOUND)
    await audit(request, principal, "incident.note", "incident", incident_id)
    return item


@router.post(
    "/incidents/{incident_id}/merge",
    response_model=Incident,
    responses=_CONFLICT,
    summary="Merge this incident into another: its alerts move there; both timelines say so",
)
async def merge(
    request: Request,
    principal: Annotated[Principal, require("incidents:act")],
    incident_id: str,
    body: MergeIn,
) -> Response | dict[str, Any]:
    store = _store(request)
    merge_call = functools.partial(
        store.merge_incident, principal.tenant_id, incident_id, body.into, actor=principal.actor
    )
    try:
        item = await run_in_threadpool(merge_call)
    except InvalidTransition as exc:
        return error_response(409, "invalid_transition", str(exc))
    if item is None:
        raise HTTPException(404, _NOT_FOUND)
    detail = {"into": body.into}
    await audit(request, principal, "incident.merge", "incident", incident_id, detail)
    return item


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_ids: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        min_length=1, max_length=1000
    )


@router.post(
    "/incidents/{incident_id}/split",
    status_code=201,
    response_model=Incident,
    responses=_CONFLICT,
    summary="Move some alerts out into a new incident; both timelines say so",
)
async def split(
    request: Request,
    principal: Annotated[Principal, require("incidents:act")],
    incident_id: str,
    body: SplitIn,
) -> Response | dict[str, Any]:
    split_call = functools.partial(
        _store(request).split_incident,
        principal.tenant_id,
        incident_id,
        body.alert_ids,
        actor=principal.actor,
    )
    try:
        item = await run_in_threadpool(split_call)
    except InvalidTransition as exc:
        return error_response(409, "invalid_transition", str(exc))
    if item is None:
        raise HTTPException(404, _NOT_FOUND)
    detail = {"alerts": len(body.alert_ids), "into": item["id"]}
    await audit(request, principal, "incident.split", "incident", incident_id, detail)
    return item


@router.get(
    "/suppressions",
    response_model=SuppressionPage,
    tags=["governance"],
    summary="Decisions a rule suppressed (strict) or would have suppressed (audit), newest first",
)
async def list_suppressions(
    request: Request,
    principal: Annotated[Principal, require("incidents:read")],
    mode: SuppressionMode | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    store = _store(request)
    page = await _page(store.list_suppressions, principal.tenant_id, mode, limit, cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "/suppressions/{decision_id}/replay",
    response_model=Suppression,
    tags=["governance"],
    responses={409: {"description": "The decision was not suppressed: nothing to replay."}},
    summary="Deliver a suppressed alert after all",
)
async def replay_suppression(
    request: Request, principal: Annotated[Principal, require("config:write")], decision_id: str
) -> Response | dict[str, Any]:
    """Records the intent (``replayed_at`` and a ``replay`` entry on the incident's
    timeline) with a notification intent, so the notifier announces the incident by the
    tenant's routes as if nothing had held it back; idempotent."""
    store = _store(request)
    asked = datetime.now(UTC)
    try:
        item = await run_in_threadpool(store.replay_suppression, principal.tenant_id, decision_id)
    except InvalidTransition as exc:
        return error_response(409, "not_suppressed", str(exc))
    if item is None:
        raise HTTPException(404, "no such suppression")
    replayed_at = item.get("replayed_at")
    if isinstance(replayed_at, str):
        replayed_at = datetime.fromisoformat(replayed_at)
    if isinstance(replayed_at, datetime) and replayed_at.tzinfo is None:
        replayed_at = replayed_at.replace(tzinfo=UTC)
    if isinstance(replayed_at, datetime) and replayed_at >= asked:  # not a repeat
        await audit(request, principal, "suppression.replay", "suppression", decision_id)
    return item

"""Read API: alerts and deploys of the caller's tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dd0c_alert.domain.models import DeployStatus
from dd0c_alert.storage.ports import AlertFilter, Page

from .permissions import Principal, require
from .routing import JsonRoute
from .types import ApiTime

router = APIRouter(prefix="/v1", tags=["alerts"], route_class=JsonRoute)


class Alert(BaseModel):
    """A canonical alert (design §4). Repeats of one firing fold into ``repeat_count``."""

    id: str
    tenant_id: str
    source: str
    source_ref: str
    fingerprint: str
    status: Literal["firing", "resolved"]
    severity: Literal["critical", "high", "medium", "low", "info"]
    title: str
    description: str
    service: str
    environment: str
    resource: str
    labels: dict[str, str]
    links: dict[str, str]
    started_at: datetime
    received_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    repeat_count: int
    event_id: str
    raw_ref: str
    raw_url: str
    incident_id: str | None = Field(
        description="The incident the alert belongs to; null until it is correlated."
    )


class AlertDecision(BaseModel):
    """What the correlation engine decided about one notification of an alert, and why."""

    decision_id: str
    alert_id: str
    incident_id: str
    at: datetime = Field(description="The notification's event time.")
    outcome: Literal["new_incident", "joined", "late_joined", "dedup", "resolved"]
    reasons: list[str]
    page: bool
    flapping: bool
    suppressed_by: str | None = Field(description="Rule that suppressed delivery (strict mode).")
    would_suppress: str | None = Field(description="Rule that would have (audit mode).")
    inhibited_by: str | None = Field(description="The firing alert that inhibited this one.")
    replayed_at: datetime | None


class AlertDetail(Alert):
    decision: AlertDecision | None = Field(description="The alert's latest decision.")


class Deploy(BaseModel):
    id: str
    tenant_id: str
    source: str
    source_ref: str
    service: str
    environment: str
    version: str
    commit: str
    author: str
    title: str
    url: str
    status: Literal["pending", "in_progress", "success", "failure", "cancelled"]
    started_at: datetime
    finished_at: datetime | None
    received_at: datetime
    event_id: str
    raw_ref: str


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None


class DeployPage(BaseModel):
    items: list[Deploy]
    next_cursor: str | None


Limit = Annotated[int, Query(ge=1, le=500)]


def _filters(
    source: str | None,
    status: str | None,
    service: str | None,
    fingerprint: str | None,
    since: datetime | None,
    until: datetime | None,
) -> AlertFilter:
    return AlertFilter(source, status, service, fingerprint, since, until)


def with_raw_url(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "raw_url": f"/v1/alerts/{item['id']}/raw"}


async def _paged(call: Any, *args: Any) -> Page:
    try:
        page: Page = await run_in_threadpool(call, *args)
    except ValueError as exc:  # an undecodable cursor
        raise HTTPException(400, str(exc)) from None
    return page


@router.get("/alerts", response_model=AlertPage, summary="List alerts, newest first")
async def list_alerts(
    request: Request,
    principal: Annotated[Principal, require("incidents:read")],
    source: str | None = None,
    status: Literal["firing", "resolved"] | None = None,
    service: str | None = None,
    fingerprint: str | None = None,
    since: Annotated[ApiTime | None, Query(description="started_at ≥ since")] = None,
    until: Annotated[ApiTime | None, Query(description="started_at < until")] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    filters = _filters(source, status, service, fingerprint, since, until)
    store = request.app.state.runtime.store
    page = await _paged(store.list_alerts, principal.tenant_id, filters, limit, cursor)
    return {"items": [with_raw_url(i) for i in page.items], "next_cursor": page.next_cursor}


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="One alert, and why")
async def get_alert(
    request: Request, principal: Annotated[Principal, require("incidents:read")], alert_id: str
) -> dict[str, Any]:
    store = request.app.state.runtime.store
    item = await run_in_threadpool(store.get_alert, principal.tenant_id, alert_id)
    if item is None:
        raise HTTPException(404, "no such alert")
    decision = await run_in_threadpool(store.alert_decision, principal.tenant_id, alert_id)
    return {**with_raw_url(item), "decision": decision}


#: The raw payload is whatever its sender wrote, served on the dashboard's origin to a
#: signed-in browser: never sniffed into a page, and without script or origin if a
#: browser renders it anyway (a payload shaped as HTML would otherwise run with the
#: viewer's session, and reach every team of theirs).
RAW_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


@router.get(
    "/alerts/{alert_id}/raw",
    summary="The raw payload the alert was normalised from, byte for byte",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
async def get_alert_raw(
    request: Request, principal: Annotated[Principal, require("incidents:read")], alert_id: str
) -> Response:
    runtime = request.app.state.runtime
    item = await run_in_threadpool(runtime.store.get_alert, principal.tenant_id, alert_id)
    if item is None or not item["raw_ref"]:
        raise HTTPException(404, "no such alert")
    try:
        body = await run_in_threadpool(runtime.archive.get, item["raw_ref"])
    except FileNotFoundError:
        raise HTTPException(404, "raw payload no longer retained") from None
    return Response(body, media_type="application/json", headers=RAW_HEADERS)


@router.get("/deploys", response_model=DeployPage, tags=["deploys"], summary="List deploys")
async def list_deploys(
    request: Request,
    principal: Annotated[Principal, require("incidents:read")],
    source: str | None = None,
    status: DeployStatus | None = None,
    service: str | None = None,
    since: Annotated[ApiTime | None, Query(description="started_at ≥ since")] = None,
    until: Annotated[ApiTime | None, Query(description="started_at < until")] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    filters = _filters(source, status, service, None, since, until)
    store = request.app.state.runtime.store
    page = await _paged(store.list_deploys, principal.tenant_id, filters, limit, cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}

"""Analytics, usage against the plan, the audit log, product events and onboarding
of the caller's tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dd0c_alert.domain.plans import plan_named, quota, warning_threshold
from dd0c_alert.domain.times import window_start
from dd0c_alert.storage.ports import Page, Store

from .api import Limit
from .permissions import require
from .principal import Principal
from .routing import JsonRoute
from .types import ApiTime

router = APIRouter(prefix="/v1", tags=["analytics"], route_class=JsonRoute)

Window = Literal["7d", "30d", "90d"]
_DAYS = {"7d": 7, "30d": 30, "90d": 90}


class Percentiles(BaseModel):
    median: float | None
    p90: float | None


class Day(BaseModel):
    day: str
    alerts: int
    incidents: int
    pages: int


class Noisy(BaseModel):
    fingerprint: str
    title: str
    count: int


class Flapping(BaseModel):
    incident_id: str
    title: str
    fingerprints: list[str]
    opened_at: datetime


class SuggestionCounts(BaseModel):
    accepted: int
    dismissed: int
    open: int


class DeliveryCounts(BaseModel):
    delivered: int
    failed: int


class Analytics(BaseModel):
    window: Window
    service: str | None
    alerts: int = Field(description="Alert events processed (firing and resolves, repeats).")
    incidents: int = Field(description="Incidents opened.")
    pages: int
    noise_reduction: float | None = Field(description="1 - incidents / alerts.")
    mtta_seconds: Percentiles
    mttr_seconds: Percentiles
    by_source: dict[str, int]
    by_service: dict[str, int]
    by_severity: dict[str, int]
    daily: list[Day]
    top_noisy: list[Noisy]
    flapping: list[Flapping]
    suggestions: SuggestionCounts
    deliveries: DeliveryCounts


class Usage(BaseModel):
    plan: str
    month: str
    alerts: int = Field(description="Alerts processed this month (what the quota counts).")
    quota: int | None = Field(description="Alerts per month; null: unlimited.")
    percent: float | None
    warning: bool = Field(description="At or over 80 % of the quota.")
    retention_days: int | None
    seats: int | None


class AuditEntry(BaseModel):
    id: str
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    client: str


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class ProductEvent(BaseModel):
    id: str
    name: str
    at: datetime
    detail: dict[str, Any]


class EventPage(BaseModel):
    items: list[ProductEvent]
    next_cursor: str | None


class Step(BaseModel):
    step: Literal[
        "integration_created",
        "first_alert_received",
        "first_incident_correlated",
        "notification_destination_connected",
    ]
    done: bool
    at: datetime | None
    detail: dict[str, Any]


class Onboarding(BaseModel):
    complete: bool
    steps: list[Step]


def _store(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


async def _paged(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        page: Page = await run_in_threadpool(lambda: call(*args, **kwargs))
    except ValueError as exc:  # an undecodable cursor
        raise HTTPException(400, str(exc)) from None
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get(
    "/analytics",
    response_model=Analytics,
    operation_id="analytics.read",
    summary="MTTA/MTTR, alerts vs incidents vs pages, volumes, noisy and flapping alerts",
)
async def analytics(
    request: Request,
    caller: Annotated[Principal, require("analytics:read")],
    window: Annotated[
        Window,
        Query(description="Today and the 6, 29 or 89 whole UTC days before it, up to now."),
    ] = "7d",
    service: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    until = datetime.now(UTC)
    since = window_start(until, _DAYS[window])
    product = _store(request).product()
    found = await run_in_threadpool(product.analytics, caller.tenant_id, since, until, service)
    return {"window": window, "service": service, **found}


@router.get(
    "/usage",
    response_model=Usage,
    operation_id="usage.read",
    summary="This month's alerts against the plan's quota",
)
async def usage(
    request: Request, caller: Annotated[Principal, require("analytics:read")]
) -> dict[str, Any]:
    store = _store(request)
    tenant = await run_in_threadpool(store.get_tenant, caller.tenant_id)
    if tenant is None:
        raise HTTPException(404, "no such tenant")
    used = await run_in_threadpool(store.alerts_this_month, caller.tenant_id)
    plan = plan_named(tenant.plan)
    limit = quota(plan, tenant.monthly_quota, request.app.state.runtime.ingest.limits.monthly_quota)
    retention = request.app.state.runtime.retention
    return {
        "plan": plan.name,
        "month": datetime.now(UTC).strftime("%Y-%m"),
        "alerts": used,
        "quota": limit or None,
        "percent": round(100.0 * used / limit, 1) if limit else None,
        "warning": bool(limit) and used >= warning_threshold(limit),
        "retention_days": plan.retention_days or (retention.days if retention else None),
        "seats": plan.seats,
    }


@router.get(
    "/audit",
    response_model=AuditPage,
    operation_id="audit.list",
    tags=["governance"],
    summary="Who changed what, when, from where; newest first",
)
async def list_audit(
    request: Request,
    caller: Annotated[Principal, require("audit:read")],
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[ApiTime | None, Query(description="at ≥ since")] = None,
    until: Annotated[ApiTime | None, Query(description="at < until")] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    product = _store(request).product()
    return await _paged(
        product.list_audit,
        caller.tenant_id,
        action=action,
        actor=actor,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/events",
    response_model=EventPage,
    operation_id="events.list",
    summary="Product events recorded for the tenant, newest first",
)
async def list_events(
    request: Request,
    caller: Annotated[Principal, require("analytics:read")],
    name: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    product = _store(request).product()
    return await _paged(product.list_events, caller.tenant_id, name, limit, cursor)


@router.get(
    "/onboarding",
    response_model=Onboarding,
    operation_id="onboarding.read",
    summary="The set-up steps and when each was first reached",
)
async def onboarding(
    request: Request, caller: Annotated[Principal, require("config:read")]
) -> dict[str, Any]:
    product = _store(request).product()
    steps = await run_in_threadpool(product.onboarding, caller.tenant_id)
    return {"complete": all(s["done"] for s in steps), "steps": steps}

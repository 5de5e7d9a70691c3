"""What the notifier sent, is sending, or gave up on, for the caller's tenant: every
delivery with its attempts, replay of a failed one, and the health of each destination.

Nothing is ever dropped silently: a delivery that exhausted its retries, or whose
destination answered a permanent error, shows here as ``failed`` and its destination
as ``stopped`` until it is replayed. Webhook URLs are shown by scheme and host only,
as they may carry a token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dd0c_alert.storage.outbox import SqlOutbox
from dd0c_alert.storage.ports import Page

from .api import Limit
from .audit import audit
from .permissions import Principal, require
from .routing import JsonRoute

router = APIRouter(prefix="/v1", tags=["notifications"], route_class=JsonRoute)

DeliveryStatus = Literal["pending", "retrying", "delivered", "failed"]
DestinationType = Literal["slack", "email", "webhook"]


class Delivery(BaseModel):
    """One message to one destination: Slack's living message (``kind`` ``message``,
    updated in place), a thread reply, a mail or a webhook event."""

    id: str
    incident_id: str
    destination_type: str
    destination: str = Field(description="Channel, addresses, or a webhook's scheme and host.")
    route: str | None = Field(description="The route that chose it; null: the default channel.")
    kind: str
    event: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When retrying: the next try.")
    message_ref: str | None = Field(description="Slack: channel_id:ts of the message.")


class Attempt(BaseModel):
    attempt: int
    ok: bool
    latency_ms: float
    error: str | None
    at: datetime


class IncidentDelivery(Delivery):
    tries: list[Attempt] = Field(description="Every attempt, oldest first.")


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None


class DestinationHealth(BaseModel):
    destination_type: str
    destination: str
    state: str = Field(
        description="e.g. failing, rate_limited, or stopped (a permanent error: nothing more "
        "is sent until a delivery to it is replayed)."
    )
    last_error: str | None
    updated_at: datetime


class DestinationList(BaseModel):
    items: list[DestinationHealth]


def _outbox(request: Request) -> SqlOutbox:
    outbox: SqlOutbox = request.app.state.runtime.outbox
    return outbox


@router.get("/deliveries", response_model=DeliveryPage, summary="Deliveries, newest first")
async def list_deliveries(
    request: Request,
    principal: Annotated[Principal, require("incidents:read")],
    status: DeliveryStatus | None = None,
    incident_id: str | None = None,
    destination_type: DestinationType | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    outbox = _outbox(request)

    def read() -> Page:
        return outbox.list_deliveries(
            principal.tenant_id,
            limit,
            cursor,
            status=status,
            incident_id=incident_id,
            destination_type=destination_type,
        )

    try:
        page = await run_in_threadpool(read)
    except ValueError as exc:  # an undecodable cursor
        raise HTTPException(400, str(exc)) from None
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "/deliveries/{delivery_id}/replay",
    response_model=Delivery,
    summary="Send a failed delivery again (and resume its stopped destination)",
)
async def replay_delivery(
    request: Request, principal: Annotated[Principal, require("config:write")], delivery_id: str
) -> dict[str, Any]:
    """A delivery that has not failed is left as it is and shown."""
    item = await run_in_threadpool(_outbox(request).replay, principal.tenant_id, delivery_id)
    if item is None:
        raise HTTPException(404, "no such delivery")
    await audit(request, principal, "delivery.replay", "delivery", delivery_id)
    return item


@router.get(
    "/destinations",
    response_model=DestinationList,
    summary="Every destination sent to, with its state now (ok, failing, rate_limited, stopped)",
)
async def destinations(
    request: Request, principal: Annotated[Principal, require("incidents:read")]
) -> dict[str, Any]:
    return {"items": await run_in_threadpool(_outbox(request).health, principal.tenant_id)}

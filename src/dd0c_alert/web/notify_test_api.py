"""Test notifications: ``POST /v1/routes/{route_id}/test`` and ``POST /v1/slack/test``.

They let whoever set up a route or Slack check it works now, without an incident: one
marked message per destination through the notifier's own senders
(``pipeline/trial_notification.py``), answered with what each destination said. A
failing destination is a result (``ok: false`` and the error as the deliveries API
words it), not an error of the request.

Each test reaches outside (a channel, a mailbox, any URL a route names), so it is
limited to one per route (or one Slack test per tenant) every ``TEST_INTERVAL_SECONDS``
(429 with ``Retry-After``), needs ``config:write``, and is audited.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dd0c_alert.notify.routing import SlackDestination, parse_route
from dd0c_alert.pipeline import route_documents
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.pipeline.trial_notification import (
    TrialResult,
    destinations_of,
    send_tests,
    test_text,
)

from .audit import audit
from .permissions import Principal, require
from .responses import error_response
from .routing import JsonRoute

router = APIRouter(prefix="/v1", route_class=JsonRoute)

#: At most one test per route (one Slack test per tenant) this often.
TEST_INTERVAL_SECONDS = 10.0


class NotificationTestResult(BaseModel):
    type: Literal["slack", "email", "webhook"]
    destination: str = Field(description="Channel, addresses, or a webhook's scheme and host.")
    ok: bool
    error: str | None = Field(description="Why it failed, as the deliveries API says it.")


class NotificationTestResults(BaseModel):
    items: list[NotificationTestResult] = Field(
        description="One per destination, in the route's order (escalation's last)."
    )


_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "`rate_limited`: a test of this was sent less than 10 s ago; "
        "see `Retry-After`."
    }
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _limited(runtime: Runtime, key: str) -> Response | None:
    """The 429 when ``key`` was tested within the interval, else ``None``."""
    wait = runtime.test_limiter.take(key, 1.0 / TEST_INTERVAL_SECONDS)
    if wait <= 0:
        return None
    seconds = max(1, math.ceil(wait))
    return error_response(
        429,
        "rate_limited",
        f"one test every {TEST_INTERVAL_SECONDS:g} s: try again in {seconds} s",
        {"Retry-After": str(seconds)},
    )


def _answer(results: list[TrialResult]) -> dict[str, Any]:
    return {
        "items": [
            {"type": r.type, "destination": r.destination, "ok": r.ok, "error": r.error}
            for r in results
        ]
    }


def _summary(results: list[TrialResult]) -> dict[str, Any]:
    """What the audit log keeps: where and whether, no error text (it is the sender's)."""
    return {
        "results": [{"type": r.type, "destination": r.destination, "ok": r.ok} for r in results]
    }


@router.post(
    "/routes/{route_id}/test",
    tags=["notifications"],
    response_model=NotificationTestResults,
    responses=_LIMITED,
    summary="Send a test notification to each destination of a route (and its escalation)",
)
async def test_route(
    request: Request, principal: Annotated[Principal, require("config:write")], route_id: str
) -> Response | dict[str, Any]:
    runtime = _runtime(request)
    stored = route_documents.find(
        await run_in_threadpool(runtime.notify_settings.routes_for_sending, principal.tenant_id),
        route_id,
    )
    if stored is None:
        raise HTTPException(404, "no such route")
    try:
        parsed = parse_route(stored)
    except ValueError as exc:  # saved by an older version: the notifier skips it too
        return error_response(422, "invalid_request", f"the route cannot be used: {exc}")
    refused = _limited(runtime, f"test:route:{principal.tenant_id}:{route_id}")
    if refused is not None:
        return refused
    results = await send_tests(
        runtime.senders(), principal.tenant_id, destinations_of(parsed), test_text(parsed.name)
    )
    await audit(request, principal, "route.test", "route", route_id, _summary(results))
    return _answer(results)


@router.post(
    "/slack/test",
    tags=["slack"],
    response_model=NotificationTestResults,
    responses={
        **_LIMITED,
        409: {"description": "`conflict`: Slack is not configured (`PUT /v1/slack` first)."},
    },
    summary="Send a test notification to the tenant's default Slack channel",
)
async def test_slack(
    request: Request, principal: Annotated[Principal, require("config:write")]
) -> Response | dict[str, Any]:
    runtime = _runtime(request)
    settings = await run_in_threadpool(runtime.notify_settings.slack, principal.tenant_id)
    if settings is None or not settings.default_channel:
        return error_response(
            409, "conflict", "Slack is not configured: set it up first (PUT /v1/slack)"
        )
    refused = _limited(runtime, f"test:slack:{principal.tenant_id}")
    if refused is not None:
        return refused
    destination = SlackDestination(settings.default_channel)
    results = await send_tests(
        runtime.senders(), principal.tenant_id, [destination], test_text(None)
    )
    await audit(request, principal, "slack.test", "slack", principal.tenant_id, _summary(results))
    return _answer(results)

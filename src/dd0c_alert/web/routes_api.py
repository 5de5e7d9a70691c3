"""Notification routes of the caller's tenant: who hears about which incidents.

Routes are evaluated in order (creation order until ``PUT /v1/routes/order``; first
match wins unless it says ``continue``; see ``notify/routing.py``). Bodies are plain
JSON objects validated by the router's own parser, so the API refuses exactly what the
notifier could not use, with the parser's message. Webhook secrets are write-only
(``pipeline/route_documents.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dd0c_alert.domain.models import Severity
from dd0c_alert.notify.routing import MAX_DESTINATIONS, MAX_RECIPIENTS, parse_route
from dd0c_alert.pipeline import route_documents
from dd0c_alert.pipeline.limits import ApiLimits
from dd0c_alert.storage.notify_settings import SqlNotifySettings

from .audit import audit
from .permissions import Principal, require
from .responses import error_response, json_response
from .routing import JsonRoute

router = APIRouter(prefix="/v1", tags=["notifications"], route_class=JsonRoute)

_NOT_FOUND = "no such route"
_EXAMPLE = {
    "name": "payments on-call",
    "matchers": '{service="checkout"}',
    "min_severity": "high",
    "continue": False,
    "quiet_hours": "mon-fri 22:00-07:00",
    "destinations": [
        {"type": "slack", "channel": "#oncall"},
        {"type": "email", "to": ["a@example.com"]},
        {"type": "webhook", "url": "https://hooks.example.com/dd0c", "secret": "…"},
    ],
    "escalation": {"after_seconds": 900, "destinations": [{"type": "slack", "channel": "#sre"}]},
}
RouteBody = Body(openapi_examples={"route": {"summary": "A route", "value": _EXAMPLE}})


def _text(most: int, about: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": most, "description": about}


_DESTINATIONS: dict[str, Any] = {
    "type": "array",
    "maxItems": MAX_DESTINATIONS,
    "items": {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "type": {"const": "slack"},
                    "channel": _text(80, "`#name` or a channel id"),
                },
                "required": ["type", "channel"],
            },
            {
                "type": "object",
                "properties": {
                    "type": {"const": "email"},
                    "to": {
                        "type": "array",
                        "items": {"type": "string", "format": "email"},
                        "minItems": 1,
                        "maxItems": MAX_RECIPIENTS,
                    },
                },
                "required": ["type", "to"],
            },
            {
                "type": "object",
                "properties": {
                    "type": {"const": "webhook"},
                    "url": _text(2000, "an http(s) URL"),
                    "secret": _text(
                        500,
                        "signs each delivery; write-only (read back as `secret_set`), and "
                        "a change that leaves it out keeps the one stored for the URL",
                    ),
                },
                "required": ["type", "url"],
            },
        ]
    },
}


def _or_null(schema: dict[str, Any], about: str) -> dict[str, Any]:
    """An optional key: ``null`` removes it (in a ``PATCH``, from the stored route)."""
    return {"anyOf": [schema, {"type": "null"}], "description": about}


#: The route document, for the API's docs: the router's parser is what checks it
#: (``notify/routing.py``), so a refusal carries the parser's message.
ROUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Route",
    "properties": {
        "id": {"type": "string", "readOnly": True, "description": "ignored: the URL's"},
        "name": _text(200, "shown in deliveries and the audit log"),
        "matchers": _or_null(
            {"type": "string"},
            'incident labels, Alertmanager style: `{service="checkout", env=~"prod|staging"}`'
            " (RE2); none: every incident",
        ),
        "min_severity": _or_null({"enum": [s.value for s in Severity]}, "this severity or worse"),
        "continue": _or_null(
            {"type": "boolean"}, "go on to the next routes after this one matched"
        ),
        "quiet_hours": _or_null(
            {"type": "string"},
            "`mon-fri 22:00-07:00; sat,sun 00:00-24:00` (UTC): only critical incidents are"
            " sent then",
        ),
        "destinations": _or_null(_DESTINATIONS, "who hears (none by default)"),
        "escalation": _or_null(
            {
                "type": "object",
                "properties": {
                    "after_seconds": {"type": "integer", "minimum": 1},
                    "destinations": _DESTINATIONS,
                },
                "required": ["after_seconds", "destinations"],
            },
            "who else hears when the incident is still unacknowledged after_seconds after"
            " it opened",
        ),
    },
    "additionalProperties": False,
}


def _documented(required: list[str]) -> dict[str, Any]:
    schema = {**ROUTE_SCHEMA, "required": required} if required else ROUTE_SCHEMA
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


def _settings(request: Request) -> SqlNotifySettings:
    settings: SqlNotifySettings = request.app.state.runtime.notify_settings
    return settings


def _limits(request: Request) -> ApiLimits:
    limits: ApiLimits = request.app.state.runtime.api_limits
    return limits


def _invalid(exc: ValueError) -> Response:
    return error_response(422, "invalid_request", str(exc))


def _refused(
    request: Request,
    document: dict[str, Any],
    routes: list[dict[str, Any]],
    route_id: str | None = None,
) -> Response | None:
    """What the router's parser cannot see: the cap on matchers a silence or an
    inhibition has too (DD0C_MAX_MATCHERS_PER_RULE), and a name another route has."""
    cap = _limits(request).max_matchers_per_rule
    count = len(parse_route(document).matchers)
    if count > cap:
        return error_response(
            422,
            "limit_exceeded",
            f"{count} matchers in one rule: the limit is {cap} "
            "(setting DD0C_MAX_MATCHERS_PER_RULE)",
        )
    taken = route_documents.name_taken(document, routes, route_id)
    return None if taken is None else error_response(422, "invalid_request", taken)


@router.get("/routes", summary="Notification routes, in evaluation order")
async def list_routes(
    request: Request, principal: Annotated[Principal, require("config:read")]
) -> Response:
    routes = await run_in_threadpool(_settings(request).list_routes, principal.tenant_id)
    return json_response({"items": [route_documents.shown(r) for r in routes]})


@router.post(
    "/routes",
    status_code=201,
    summary="Add a route at the end of the order",
    responses={422: {"description": "Invalid route, or the tenant has DD0C_MAX_ROUTES."}},
    openapi_extra=_documented(["name"]),
)
async def create_route(
    request: Request,
    principal: Annotated[Principal, require("config:write")],
    body: dict[str, Any] = RouteBody,
) -> Response:
    try:
        document = route_documents.prepare(body)
    except ValueError as exc:
        return _invalid(exc)
    settings, cap = _settings(request), _limits(request).max_routes
    routes = await run_in_threadpool(settings.list_routes, principal.tenant_id)
    if len(routes) >= cap:
        return error_response(
            422, "limit_exceeded", f"too many routes: the limit is {cap} (setting DD0C_MAX_ROUTES)"
        )
    if (refusal := _refused(request, document, routes)) is not None:
        return refusal
    stored = await run_in_threadpool(settings.save_route, principal.tenant_id, document)
    shown = route_documents.shown(stored or {})
    await audit(request, principal, "route.create", "route", str(shown.get("id")), shown)
    return json_response(shown, 201)


class RouteOrderIn(BaseModel):
    ids: list[Annotated[str, Field(max_length=64)]] = Field(
        max_length=10_000, description="Every route's id once, in the new evaluation order."
    )


@router.put(
    "/routes/order",
    summary="Put the routes in a new evaluation order",
    responses={
        409: {
            "description": "`conflict`: `ids` does not name every route once (one was added "
            "or deleted since the list was read): read it again."
        }
    },
)
async def reorder_routes(
    request: Request,
    principal: Annotated[Principal, require("config:write")],
    body: RouteOrderIn,
) -> Response:
    """The first route that matches an incident takes it (unless it says ``continue``):
    the order decides who is paged. Returns the routes in their new order."""
    settings = _settings(request)
    problem = await run_in_threadpool(settings.reorder_routes, principal.tenant_id, body.ids)
    if problem is not None:
        return error_response(409, "conflict", problem)
    await audit(request, principal, "route.reorder", "route", "", {"ids": body.ids})
    routes = await run_in_threadpool(settings.list_routes, principal.tenant_id)
    return json_response({"items": [route_documents.shown(r) for r in routes]})


@router.get("/routes/{route_id}", summary="One route")
async def get_route(
    request: Request, principal: Annotated[Principal, require("config:read")], route_id: str
) -> Response:
    routes = await run_in_threadpool(_settings(request).list_routes, principal.tenant_id)
    found = route_documents.find(routes, route_id)
    if found is None:
        raise HTTPException(404, _NOT_FOUND)
    return json_response(route_documents.shown(found))


@router.patch(
    "/routes/{route_id}",
    summary="Change some keys of a route (a webhook given without its secret keeps it)",
    openapi_extra=_documented([]),
)
async def patch_route(
    request: Request,
    principal: Annotated[Principal, require("config:write")],
    route_id: str,
    body: dict[str, Any] = RouteBody,
) -> Response:
    settings = _settings(request)
    routes = await run_in_threadpool(settings.routes_for_sending, principal.tenant_id)
    previous = route_documents.find(routes, route_id)
    if previous is None:
        raise HTTPException(404, _NOT_FOUND)
    try:
        document = route_documents.prepare(body, previous)
    except ValueError as exc:
        return _invalid(exc)
    if (refusal := _refused(request, document, routes, route_id)) is not None:
        return refusal
    stored = await run_in_threadpool(settings.save_route, principal.tenant_id, document, route_id)
    if stored is None:  # deleted meanwhile
        raise HTTPException(404, _NOT_FOUND)
    shown = route_documents.shown(stored)
    await audit(request, principal, "route.update", "route", route_id, shown)
    return json_response(shown)


@router.delete("/routes/{route_id}", status_code=204, summary="Delete a route")
async def delete_route(
    request: Request, principal: Annotated[Principal, require("config:write")], route_id: str
) -> Response:
    if not await run_in_threadpool(_settings(request).delete_route, principal.tenant_id, route_id):
        raise HTTPException(404, _NOT_FOUND)
    await audit(request, principal, "route.delete", "route", route_id)
    return Response(status_code=204)

"""Configuration pages: notification routes and escalation, the service topology with
its graph, and the correlation settings. Each form calls the REST endpoint's own
function (``api_bridge``), so validation, permissions and the audit log are the API's."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, Response
from pydantic import ValidationError

from dd0c_alert.domain.models import Severity

from .. import config_api, notify_test_api, routes_api
from ..permissions import Principal, allowed
from .api_bridge import call, field_errors, posting, reading, trial_outcome
from .render import page, page_router, redirect
from .route_forms import KINDS, document_of, field_of, form_of
from .session import Form, auth_config, field
from .topology_svg import MAX_DRAWN, neighbourhood, topology_graph

router = page_router()

NOTES = {
    "route-created": "Route created.",
    "route-saved": "Route saved.",
    "route-deleted": "Route deleted.",
    "route-moved": "Route moved: incidents are matched in the new order from now on.",
    "topology": "Dependencies saved.",
    "settings": "Settings saved: alerts processed from now on use them.",
    "unchanged": "Nothing changed.",
}
SEVERITIES = [s.value for s in Severity]
SERVICES_PER_PAGE = 100
MAX_NAMES = 500


# --------------------------------------------------------------------------- routes


async def _routes(request: Request, me: Principal) -> list[dict[str, Any]]:
    answer = await call(routes_api.list_routes, request, me)
    return list(answer.value["items"])


def _route_page(
    request: Request,
    me: Principal,
    routes: list[dict[str, Any]],
    *,
    editing: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    message: str = "",
    tested: dict[str, Any] | None = None,
) -> Response:
    return page(
        request,
        "config_routes.html",
        me,
        status,
        routes=routes,
        editing=editing,
        values=values or {},
        errors=errors or {},
        severities=SEVERITIES,
        kinds=KINDS,
        message=message,
        error=(errors or {}).get("form", ""),
        tested=tested,
    )


@router.get("/settings/routes")
async def routes_page(request: Request, msg: str = "") -> Response:
    me = await reading(request, routes_api.list_routes)
    routes = await _routes(request, me)
    return _route_page(request, me, routes, message=NOTES.get(msg, ""))


@router.get("/settings/routes/{route_id}")
async def route_page(request: Request, route_id: str) -> Response:
    me = await reading(request, routes_api.get_route)
    routes = await _routes(request, me)
    found = next((r for r in routes if r.get("id") == route_id), None)
    if found is None:
        raise HTTPException(404, "no such route")
    return _route_page(request, me, routes, editing=found, values=form_of(found))


async def _save_route(request: Request, route_id: str | None) -> Response:
    endpoint = routes_api.create_route if route_id is None else routes_api.patch_route
    me, form = await posting(request, endpoint)
    routes = await _routes(request, me)
    editing = next((r for r in routes if r.get("id") == route_id), None) if route_id else None
    if route_id is not None and editing is None:
        raise HTTPException(404, "no such route")
    document, errors = document_of(form)
    values = {k: v for k, v in form.items() if k not in ("csrf_token", "webhook_secret")}
    if not errors:
        args: dict[str, Any] = {"body": document}
        if route_id is not None:
            args["route_id"] = route_id
        answer = await call(endpoint, request, me, **args)
        if answer.ok:
            note = "route-created" if route_id is None else "route-saved"
            return redirect(request, f"/settings/routes?msg={note}")
        errors = {field_of(answer.error): answer.error}
        if answer.code == "limit_exceeded":
            errors = {"form": answer.error}
    errors.setdefault("form", "The route was not saved: see the fields marked below.")
    return _route_page(
        request, me, routes, editing=editing, values=values, errors=errors, status=422
    )


@router.post("/settings/routes/new")
async def create_route(request: Request) -> Response:
    return await _save_route(request, None)


@router.post("/settings/routes/{route_id}")
async def save_route(request: Request, route_id: str) -> Response:
    return await _save_route(request, route_id)


@router.post("/settings/routes/{route_id}/delete")
async def delete_route(request: Request, route_id: str) -> Response:
    me, _ = await posting(request, routes_api.delete_route)
    answer = await call(routes_api.delete_route, request, me, route_id=route_id)
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return redirect(request, "/settings/routes?msg=route-deleted")


@router.post("/settings/routes/{route_id}/move")
async def move_route(request: Request, route_id: str) -> Response:
    """One place up or down (``PUT /v1/routes/order``): the first matching route takes
    the incident, so the order decides who is paged."""
    me, form = await posting(request, routes_api.reorder_routes)
    ids = [str(r["id"]) for r in await _routes(request, me)]
    if route_id not in ids:
        raise HTTPException(404, "no such route")
    at = ids.index(route_id)
    to = at - 1 if field(form, "direction") == "up" else at + 1
    if 0 <= to < len(ids):
        ids[at], ids[to] = ids[to], ids[at]
        body = routes_api.RouteOrderIn(ids=ids)
        answer = await call(routes_api.reorder_routes, request, me, body=body)
        if not answer.ok:  # a route added or deleted meanwhile: show the list as it is
            routes = await _routes(request, me)
            return _route_page(request, me, routes, message=answer.error, status=answer.status)
    return redirect(request, "/settings/routes?msg=route-moved")


@router.post("/settings/routes/{route_id}/test")
async def test_route(request: Request, route_id: str) -> Response:
    """``POST /v1/routes/{id}/test``; the page shows what each destination said on
    the route's card (a result, not a stored state: it is not redirected to)."""
    me, _ = await posting(request, notify_test_api.test_route)
    answer = await call(notify_test_api.test_route, request, me, route_id=route_id)
    if answer.status == 404:
        raise HTTPException(404, answer.error)
    routes = await _routes(request, me)
    tested = {"route_id": route_id, **trial_outcome(answer)}
    status = 200 if answer.ok else answer.status  # 429: tried again too soon
    return _route_page(request, me, routes, tested=tested, status=status)


# --------------------------------------------------------------------------- topology


def _names(text: str) -> list[str]:
    """Service names separated by commas or new lines, in order, once each."""
    names = [n.strip() for chunk in text.splitlines() for n in chunk.split(",")]
    return list(dict.fromkeys(n for n in names if n))


async def _topology(request: Request, me: Principal) -> dict[str, list[str]]:
    answer = await call(config_api.get_topology, request, me)
    return dict(answer.value["dependencies"])


def _graph(deps: dict[str, list[str]], focus: str) -> tuple[str, str]:
    """The SVG and, when it cannot be drawn, why and what to do instead."""
    everything = set(deps) | {u for ups in deps.values() for u in ups}
    drawn = neighbourhood(deps, focus) if focus else everything
    if len(drawn) > MAX_DRAWN:
        hint = "choose a service below to draw its neighbourhood"
        return "", f"{len(drawn)} services are too many to draw legibly: {hint}."
    return topology_graph(deps, drawn, focus), ""


async def _topology_page(
    request: Request,
    me: Principal,
    *,
    number: int = 1,
    focus: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> Response:
    deps = await _topology(request, me)
    services = sorted(deps)
    pages = max(1, -(-len(services) // SERVICES_PER_PAGE))
    number = min(max(number, 1), pages)
    shown = services[(number - 1) * SERVICES_PER_PAGE : number * SERVICES_PER_PAGE]
    graph, too_big = _graph(deps, focus)
    return page(
        request,
        "config_topology.html",
        me,
        status,
        deps=deps,
        shown=shown,
        number=number,
        pages=pages,
        focus=focus,
        graph=graph,
        too_big=too_big,
        errors=errors or {},
        values=values or {},
        message=message,
        error=(errors or {}).get("form", ""),
    )


@router.get("/settings/topology")
async def topology_page(
    request: Request, msg: str = "", page: int = 1, focus: str = ""
) -> Response:
    me = await reading(request, config_api.get_topology)
    message = NOTES.get(msg, "")
    return await _topology_page(request, me, number=page, focus=focus[:256], message=message)


@router.post("/settings/topology")
async def save_service(request: Request) -> Response:
    """One service's dependencies replaced (none: the service is taken off the list);
    the whole topology then goes through the API's ``PUT /v1/topology``."""
    me, form = await posting(request, config_api.put_topology)
    service, upstreams = field(form, "service"), _names(form.get("depends_on", ""))
    values = {"service": service, "depends_on": form.get("depends_on", "")}
    errors: dict[str, str] = {}
    if not service:
        errors["service"] = "name the service"
    elif len(upstreams) > MAX_NAMES:
        errors["depends_on"] = f"at most {MAX_NAMES} dependencies per service here"
    deps = await _topology(request, me)
    if not errors:
        if upstreams:
            deps[service] = upstreams
        else:
            deps.pop(service, None)
        try:
            body = config_api.Topology(dependencies=deps)
        except ValidationError as exc:
            errors["depends_on"] = next(iter(field_errors(exc).values()))
        else:
            answer = await call(config_api.put_topology, request, me, body=body)
            if answer.ok:
                return redirect(request, "/settings/topology?msg=topology")
            errors["form"] = answer.error
    errors.setdefault("form", "The dependencies were not saved: see the fields marked below.")
    return await _topology_page(request, me, errors=errors, values=values, status=422)


# --------------------------------------------------------------------------- settings

_NUMBERS = (
    "correlation_window_seconds",
    "max_incident_span_seconds",
    "deploy_lookback_seconds",
    "flap_threshold",
    "flap_window_seconds",
)
_FEATURES = ("topology", "deploys", "flapping", "inhibition")


def _changes(form: Form, current: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings the form changes (only those, so the audit log says what changed)
    and the fields that are not even numbers."""
    wanted: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in _NUMBERS:
        try:
            wanted[name] = int(field(form, name))
        except ValueError:
            errors[name] = "enter a whole number"
    wanted["governance_mode"] = field(form, "governance_mode")
    wanted["auto_resolve"] = form.get("auto_resolve") == "on"
    wanted["never_suppress_services"] = sorted(_names(form.get("never_suppress_services", "")))
    wanted["time_zone"] = field(form, "time_zone") or "UTC"
    features = {f: form.get(f"feature_{f}") == "on" for f in _FEATURES}
    changes = {k: v for k, v in wanted.items() if current.get(k) != v}
    changed_features = {k: v for k, v in features.items() if current["features"].get(k) != v}
    if changed_features:
        changes["features"] = changed_features
    return changes, errors


def _smtp(request: Request) -> dict[str, Any] | None:
    """Where mail goes, as the operator set it (never the password)."""
    config = auth_config(request)
    if config.smtp is None:
        return None
    smtp = config.smtp
    return {"host": smtp.host, "port": smtp.port, "tls": smtp.tls, "sender": config.mail_from}


def _settings_page(
    request: Request,
    me: Principal,
    current: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> Response:
    return page(
        request,
        "config_correlation.html",
        me,
        status,
        s=current,
        features=_FEATURES,
        smtp=_smtp(request),
        can_write=allowed("config:write", me),
        errors=errors or {},
        message=message,
        error=(errors or {}).get("form", ""),
    )


@router.get("/settings/correlation")
async def correlation_page(request: Request, msg: str = "") -> Response:
    me = await reading(request, config_api.get_settings)
    current = (await call(config_api.get_settings, request, me)).value
    return _settings_page(request, me, current, message=NOTES.get(msg, ""))


@router.post("/settings/correlation")
async def save_settings(request: Request) -> Response:
    me, form = await posting(request, config_api.patch_settings)
    current = (await call(config_api.get_settings, request, me)).value
    changes, errors = _changes(form, current)
    if not errors and not changes:
        return redirect(request, "/settings/correlation?msg=unchanged")
    if not errors:
        try:
            body = config_api.SettingsPatch.model_validate(changes)
        except ValidationError as exc:
            errors = {k.removeprefix("features."): v for k, v in field_errors(exc).items()}
        else:
            answer = await call(config_api.patch_settings, request, me, body=body)
            if answer.ok:
                return redirect(request, "/settings/correlation?msg=settings")
            name = answer.error.split(" ", 1)[0]
            errors = {name if name in _NUMBERS else "form": answer.error}
    shown = {
        **current,
        **{k: v for k, v in form.items() if k in _NUMBERS},
        "governance_mode": field(form, "governance_mode"),
        "auto_resolve": form.get("auto_resolve") == "on",
        "never_suppress_services": _names(form.get("never_suppress_services", "")),
        "features": {f: form.get(f"feature_{f}") == "on" for f in _FEATURES},
        "time_zone": field(form, "time_zone"),
    }
    errors.setdefault("form", "The settings were not saved: see the fields marked below.")
    return _settings_page(request, me, shown, errors=errors, status=422)

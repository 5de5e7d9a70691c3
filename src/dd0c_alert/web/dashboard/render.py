"""Rendering: the template environment, its filters, and the one helper every view
ends with (``page``), which also sets the cookies the request decided on."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from dd0c_alert.correlation.rules import names_zone
from dd0c_alert.domain.urls import web_url

from ..permissions import Principal, allowed
from ..routing import NUL_REFUSED, address_holds_nul
from .session import csrf_token, finish

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _when(value: datetime | str | None) -> Markup:
    """A ``<time>`` the page's script shows in the viewer's zone; UTC on hover and
    without JavaScript."""
    if value is None:
        return Markup("—")
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    iso = moment.isoformat().replace("+00:00", "Z")
    utc = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{0}" title="{1}">{1}</time>').format(iso, utc)


def _ago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = int((datetime.now(UTC) - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def _schedule(text: str) -> str:
    """A recurring window as written, with its zone: UTC unless it names one."""
    return text if names_zone(text) else f"{text} UTC"


templates.env.filters["when"] = _when
templates.env.filters["schedule"] = _schedule
templates.env.filters["ago"] = _ago
#: Links from payloads: only http(s) ones are shown (rows stored before providers
#: filtered them may hold ``javascript:`` URLs).
templates.env.filters["web_url"] = web_url
templates.env.globals["allowed"] = allowed


def csrf_field(request: Request) -> Markup:
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(
        escape(csrf_token(request))
    )


def page(
    request: Request,
    template: str,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """Render ``template`` with the viewer, their tenants and the CSRF field."""
    tenants = getattr(request.state, "tenants", [])
    response = templates.TemplateResponse(
        request,
        template,
        {
            "me": principal,
            "tenants": tenants,
            "csrf": csrf_field(request),
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )
    return finish(request, confined(response))


#: The pages load their own scripts, styles and images only, and no other site may
#: frame them (clickjacking): a link or text that slipped through escaping still
#: cannot run or load anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def confined(response: Response) -> Response:
    """``response`` with the dashboard's security headers."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def redirect(request: Request, to: str) -> Response:
    """303 to ``to`` (after a POST: the browser GETs it), with this request's cookies."""
    return finish(request, RedirectResponse(to, status_code=303))


def error_page(request: Request, status_code: int, detail: str) -> Response:
    return page(request, "error.html", None, status_code, status=status_code, detail=detail)


def unreadable(exc: RequestValidationError) -> str:
    """What a page's address holds that the page cannot read, in a sentence."""
    parts = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
    return f"This address holds a value the page cannot read ({'; '.join(parts)})."


class PageRoute(APIRoute):
    """A dashboard route: a query parameter it cannot read (``?page=abc``) answers the
    dashboard's 400 page, not the JSON 422 the application's handler gives the API;
    every answer carries the cookies the request decided on (``finish``), streams and
    polls included, not only those rendered by ``page`` and ``redirect``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            if address_holds_nul(request):
                return error_page(request, 400, f"This address is not valid: {NUL_REFUSED}.")
            try:
                return finish(request, await handle(request))
            except RequestValidationError as exc:
                return error_page(request, 400, unreadable(exc))

        return handle_page


def page_router() -> APIRouter:
    """The router of a module of pages (out of the API's schema, ``PageRoute``s)."""
    return APIRouter(include_in_schema=False, route_class=PageRoute)

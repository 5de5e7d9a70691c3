"""The FastAPI application for one Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from dd0c_alert import __version__
from dd0c_alert.logs import Throttle
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.engine import UNAVAILABLE

from . import (
    api,
    auth_api,
    config_api,
    deliveries_api,
    health,
    incidents,
    integrations_api,
    notify_test_api,
    product_api,
    replay_api,
    routes_api,
    slack_api,
    suggestions,
    webhooks,
)
from .body_limit import BodyLimit
from .dashboard import mount as dashboard
from .openapi_errors import document_errors
from .responses import ERROR_CODES, error_response, validation_error_response


class _App(FastAPI):
    """FastAPI, except that webhook deliveries (every HTTP request under
    ``webhooks.PREFIX``) go straight to the raw ASGI handler, past FastAPI's middleware
    and routing; lifespan, the REST API and the docs are FastAPI's."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state.runtime = runtime
        self.state.accounts = runtime.store.accounts()
        self.deliveries = (
            webhooks.WebhookEndpoint(runtime.ingest, per_tenant_metrics=runtime.per_tenant_metrics)
            if "ingest" in runtime.roles
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.deliveries is not None
            and scope["type"] == "http"
            and webhooks.route_path(scope).startswith(webhooks.PREFIX)
        ):
            await self.deliveries(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()  # cached by FastAPI: merging again changes nothing
        if self.deliveries is not None:
            schema["paths"] = {**webhooks.openapi_paths(), **schema["paths"]}
        # Every 422 has the one error shape (see ``errors.py``), not FastAPI's default.
        components = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in components:
            components["HTTPValidationError"] = _VALIDATION_ERROR
        document_errors(schema, skip_prefix=webhooks.PREFIX)
        return schema


_VALIDATION_ERROR: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "title": "Error"},
        "detail": {"type": "string", "title": "Detail"},
        "errors": {"type": "array", "items": {"type": "object"}, "title": "Errors"},
    },
}


def _served(routes: Sequence[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(full path, methods) of every route, included routers walked."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _served(included.routes, prefix + getattr(context, "prefix", ""))
        elif getattr(route, "methods", None):
            yield prefix + route.path, set(route.methods)


log = structlog.get_logger(__name__)

#: One ``database_unavailable`` line a minute per kind of error while it lasts.
_UNAVAILABLE_LINES = Throttle(60.0)
_UNAVAILABLE_DETAIL = "the database cannot be reached right now: try again shortly"


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """A database that is down or restarting answered every API and dashboard request
    500 ``internal_error``, with a traceback per request in the log, while webhooks
    got 503: it is the server's state, not the request, and passes. The error alone
    is logged (not the traceback, whose frames hold the request)."""
    held = _UNAVAILABLE_LINES.allow(type(exc).__name__)
    if held is not None:
        log.error(
            "database_unavailable",
            path=request.url.path[:200],
            error=f"{type(exc).__name__}: {exc}"[:300],
            repeated=held,
        )
    runtime = request.app.state.runtime
    if "api" in runtime.roles and dashboard.is_page(request):
        page = dashboard.error_page(request, 503, _UNAVAILABLE_DETAIL)
        page.headers["Retry-After"] = "5"
        return page
    return error_response(503, "unavailable", _UNAVAILABLE_DETAIL, {"Retry-After": "5"})


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path, for a 405's ``Allow``.

    Starlette answers a 405 with the methods of the first route whose path matched, but
    FastAPI makes one route per method, so ``DELETE /v1/api-keys`` was told ``Allow:
    POST`` although ``GET`` is served there too; RFC 9110 wants all the resource's.
    """
    path = request.scope["path"]
    methods: set[str] = set()
    for full_path, served in _served(request.app.routes):
        if compile_path(full_path)[0].match(path):
            methods |= served
    return ", ".join(sorted(methods))


def create_app(runtime: Runtime) -> FastAPI:
    """Webhooks when the runtime has the ``ingest`` role, the REST API when it has
    ``api``; health endpoints always."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = _App(
        runtime,
        title="dd0c/alert",
        version=__version__,
        summary="Every alert in, nothing lost, one clear incident out.",
        lifespan=lifespan,
        docs_url=None,  # served below from vendored assets, not a CDN
        redoc_url=None,
    )
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    if "api" in runtime.roles:
        for module in (
            api,
            auth_api,
            incidents,
            config_api,
            suggestions,
            replay_api,
            routes_api,
            deliveries_api,
            slack_api,
            notify_test_api,
            integrations_api,
            product_api,
        ):
            app.include_router(module.router)
        dashboard.install(app)
    app.include_router(health.router)
    app.add_middleware(
        BodyLimit,
        max_bytes=runtime.api_limits.max_body_bytes,
        timeout=runtime.api_limits.body_timeout_seconds,
    )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        allow = {"Allow": allowed_methods(request)} if exc.status_code == 405 else {}
        headers.update(allow)
        if "api" in runtime.roles and dashboard.is_page(request):
            page = dashboard.error_page(request, exc.status_code, str(exc.detail))
            page.headers.update(allow)
            return page
        reason = ERROR_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, reason, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return validation_error_response(exc.errors())

    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> Response:
        """A bug answers in the same shape as every other error (uvicorn's is plain
        text); the traceback goes to the log, as before, never to the caller."""
        detail = "the request failed on the server: its log says why"
        if "api" in runtime.roles and dashboard.is_page(request):
            return dashboard.error_page(request, 500, detail)
        return error_response(500, "internal_error", detail)

    return app

"""The FastAPI application for one Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from dd0c_alert import __version__
from dd0c_alert.pipeline.runtime import Runtime

from . import api, health, webhooks
from .responses import error_response


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="dd0c/alert",
        version=__version__,
        summary="Every alert in, nothing lost, one clear incident out.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(health.router)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        reason = {401: "unauthorized", 404: "not_found", 400: "bad_request"}.get(
            exc.status_code, "error"
        )
        return error_response(exc.status_code, reason, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return error_response(422, "invalid_request", detail)

    return app

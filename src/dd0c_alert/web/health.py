"""Liveness and readiness, for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from .responses import json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="The database answers, the queue is readable, the worker runs")
async def readyz(request: Request) -> Response:
    runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(runtime.store.ping)
        checks["database"] = "ok"
        depth = await run_in_threadpool(runtime.queue.depth)
        checks["queue"] = f"ok ({depth.messages} waiting, oldest {depth.oldest_age_seconds:.1f} s)"
    except Exception as exc:
        checks["database"] = f"failing: {type(exc).__name__}"
    if runtime.worker is not None:
        checks["worker"] = "ok" if runtime.worker.is_alive() else "stopped"
    ready = all(value.startswith("ok") for value in checks.values())
    return json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )

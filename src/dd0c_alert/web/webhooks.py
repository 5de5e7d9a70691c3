"""``POST /v1/wh/{tenant_id}/{provider}[/{integration_id}]``: every source's way in."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dd0c_alert.pipeline.ingest import IngestService, Rejected

from .responses import error_response, json_response

router = APIRouter(tags=["webhooks"])

_RESPONSES: dict[int | str, dict[str, str]] = {
    202: {"description": 'Committed to the queue: `{"event_id", "status": "accepted"}`.'},
    200: {"description": 'A delivery id seen in the last 24 h: `{"status": "duplicate"}`.'},
    400: {"description": "`invalid_json`: the body does not parse."},
    401: {
        "description": "`missing_signature`, `signature_mismatch`, `timestamp_expired` or "
        "`unknown_integration`. Nothing is stored."
    },
    404: {"description": "`unknown_tenant` or `unknown_provider`."},
    413: {"description": "`body_too_large`."},
    429: {"description": "`rate_limited` or `quota_exceeded`, with `Retry-After`."},
}
_BODY = {"requestBody": {"content": {"application/json": {"schema": {}}}, "required": True}}


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, cap: int) -> bytes:
    """Read the body, refusing early (by Content-Length or while streaming) past ``cap``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _receive(
    request: Request, tenant_id: str, provider: str, integration_id: str | None
) -> Response:
    ingest: IngestService = request.app.state.runtime.ingest
    cap = ingest.limits.max_body_bytes
    try:
        body = await _read_capped(request, cap)
    except _TooLarge:
        return error_response(413, "body_too_large", f"body exceeds {cap} bytes")
    headers = {
        key.decode("latin-1"): value.decode("latin-1") for key, value in request.scope["headers"]
    }
    try:
        outcome = await ingest.receive(tenant_id, provider, integration_id, headers, body)
    except Rejected as exc:
        return error_response(exc.status, exc.reason, exc.detail, exc.headers)
    if outcome.duplicate:
        return json_response({"event_id": outcome.event_id, "status": "duplicate"}, 200)
    return json_response({"event_id": outcome.event_id, "status": "accepted"}, 202)


@router.post(
    "/v1/wh/{tenant_id}/{provider}",
    status_code=202,
    responses=_RESPONSES,
    openapi_extra=_BODY,
    summary="Receive a webhook from a monitoring or CI/CD tool",
)
async def receive(request: Request, tenant_id: str, provider: str) -> Response:
    return await _receive(request, tenant_id, provider, None)


@router.post(
    "/v1/wh/{tenant_id}/{provider}/{integration_id}",
    status_code=202,
    responses=_RESPONSES,
    openapi_extra=_BODY,
    summary="Receive a webhook for one of several integrations of a provider",
)
async def receive_for_integration(
    request: Request, tenant_id: str, provider: str, integration_id: str
) -> Response:
    return await _receive(request, tenant_id, provider, integration_id)

"""``POST /v1/wh/{tenant_id}/{provider}[/{integration_id}]``: every source's way in.

The hottest path of the service, so it is a raw ASGI handler that create_app puts in
front of FastAPI: it owns every ``/v1/wh/`` path, parses it itself, reads the body
straight from ``receive`` under the size cap and answers with two ``send`` calls.
FastAPI's per-request machinery (dependency solving, Request and Response objects)
costs more than admission itself. Their OpenAPI docs, openapi_paths(), are merged into
the app's schema. A plain delivery does not even get here: the HTTP protocol
(``http_server``) hands its whole body to ``admit``, which both paths answer with.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter, Histogram
from starlette.datastructures import URL
from starlette.responses import RedirectResponse
from starlette.types import Message, Receive, Scope, Send

from dd0c_alert import tracing
from dd0c_alert.logs import Throttle
from dd0c_alert.pipeline import metrics
from dd0c_alert.pipeline.ingest import KEY_MISMATCH, IngestService, Rejected
from dd0c_alert.providers import PROVIDERS

log = structlog.get_logger(__name__)

PREFIX = "/v1/wh/"
_NOT_QUEUED_LINES = Throttle(60.0)
_UNREADABLE_LINES = Throttle(60.0)
_NOT_FOUND_DETAIL = (
    "no such endpoint: POST webhooks to /v1/wh/{tenant_id}/{provider}[/{integration_id}]"
)
_JSON = (b"content-type", b"application/json")
_NOT_QUEUED = {
    "error": "unavailable",
    "detail": "the delivery could not be committed to the queue and was not stored: "
    "send it again (the server's log says why)",
}


def route_path(scope: Scope) -> str:
    """The path routes match against: scope["path"] without the root path (as Starlette)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


def segments(path: str) -> list[str] | None:
    """tenant_id, provider[, integration_id] of a webhook path, or None if it is not one."""
    parts = path[len(PREFIX) :].split("/")
    if 2 <= len(parts) <= 3 and all(parts):
        return parts
    return None


class Reply(NamedTuple):
    """An answer to a delivery: a JSON document and any extra headers."""

    status: int
    content: dict[str, Any]
    headers: Mapping[str, str] = {}


class WebhookEndpoint:
    """The ASGI handler for every HTTP request whose path starts with PREFIX."""

    def __init__(self, ingest: IngestService, *, per_tenant_metrics: bool = False) -> None:
        self._ingest = ingest
        self._per_tenant = per_tenant_metrics
        self.limits = ingest.limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not tracing.enabled():
            await self._handle(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        span = tracing.tracer().start_span(
            "POST /v1/wh/{tenant_id}/{provider}",
            context=tracing.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            await send(message)

        # The span is current while the delivery is admitted: ingest puts its context
        # in the queue message, and log lines written meanwhile carry its trace id.
        with trace.use_span(span, end_on_exit=True):
            await self._handle(scope, receive, answer)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        parts = segments(path)
        if parts is None:
            if path.endswith("/") and segments(path.rstrip("/")) is not None:
                # As FastAPI's router did: a trailing slash is redirected (307, keeps POST).
                redirect = dict(scope, path=scope["path"].rstrip("/"))
                await RedirectResponse(str(URL(scope=redirect)))(scope, receive, send)
                return
            await _error(send, 404, "not_found", _NOT_FOUND_DETAIL)
            return
        if scope["method"] != "POST":
            detail = f"{scope['method']} is not allowed here: deliver webhooks with POST"
            await _error(send, 405, "method_not_allowed", detail, {"Allow": "POST"})
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        cap = self.limits.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _error(send, 413, "body_too_large", f"body exceeds {cap} bytes")
            return
        timeout = self.limits.body_timeout_seconds
        try:
            body = await _read_body(receive, cap, timeout)
        except TimeoutError:
            detail = body_timeout_detail(timeout)
            await _error(send, 408, "request_timeout", detail, {"Connection": "close"})
            return
        if body is None:  # the client went away: nobody to answer
            return
        if len(body) > cap:
            await _error(send, 413, "body_too_large", f"body exceeds {cap} bytes")
            return
        await _json(send, *await self.admit(parts, headers, body))

    async def admit(self, parts: list[str], headers: dict[str, str], body: bytes) -> Reply:
        """The answer to one whole delivery: ``parts`` of its path (``segments``),
        its headers with lower-case names, its body (within the cap)."""
        tenant_id, provider, *integration = parts
        # A provider name from the path is a label only when it is one: an attacker's
        # made-up names must not grow the metric series.
        known = provider if provider in PROVIDERS else "unknown"
        try:
            outcome = await self._ingest.receive(
                tenant_id, provider, integration[0] if integration else None, headers, body
            )
        except Rejected as exc:
            if exc.reason == KEY_MISMATCH:
                _log_unreadable(tenant_id, known)
            metrics.WEBHOOKS.labels(known, exc.reason).inc()
            _annotate(tenant_id, provider, None, exc.reason)
            return Reply(exc.status, {"error": exc.reason, "detail": exc.detail}, exc.headers)
        except Exception as exc:
            # Not committed (the queue's disk is full, its database away): nothing was
            # stored, and the sender is told to try again, as after a timeout. The error
            # alone is logged: a traceback's frames hold the request's headers.
            held = _NOT_QUEUED_LINES.allow(type(exc).__name__)
            if held is not None:  # a full disk refuses every delivery: one line a minute
                log.error(
                    "webhook_not_queued",
                    tenant_id=tenant_id[:64],
                    provider=known,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    repeated=held,
                )
            metrics.WEBHOOKS.labels(known, "unavailable").inc()
            _annotate(tenant_id, provider, None, "unavailable")
            return Reply(503, _NOT_QUEUED, {"Retry-After": "5"})
        _annotate(tenant_id, provider, outcome.event_id, None)
        if self._per_tenant:
            metrics.WEBHOOKS_BY_TENANT.labels(tenant_id).inc()
        if outcome.duplicate:
            metrics.WEBHOOKS.labels(known, "duplicate").inc()
            return Reply(200, {"event_id": outcome.event_id, "status": "duplicate"})
        accepted, body_bytes = _accepted_metrics(known)
        accepted.inc()
        body_bytes.observe(len(body))
        return Reply(202, {"event_id": outcome.event_id, "status": "accepted"})


def _log_unreadable(tenant_id: str, provider: str) -> None:
    """Name the cause for the operator, one line a minute: the key lasts until someone
    fixes it, and every delivery of every integration is refused meanwhile. The line
    said only ``InvalidToken: `` (Fernet's error has no words)."""
    held = _UNREADABLE_LINES.allow(KEY_MISMATCH)
    if held is not None:
        log.error(
            "webhook_secret_unreadable",
            tenant_id=tenant_id[:64],
            provider=provider,
            error="the secret key (DD0C_SECRET_KEY, else DD0C_DATA_DIR/secret.key) cannot "
            "decrypt this integration's stored secret: start with the key the secrets were "
            "stored with (docs/operations.md#backups)",
            repeated=held,
        )


@functools.cache  # one entry per provider, and "unknown"
def _accepted_metrics(provider: str) -> tuple[Counter, Histogram]:
    """The series every accepted delivery counts in: ``labels()`` once per provider
    rather than per request (1 µs of each delivery's two)."""
    return metrics.WEBHOOKS.labels(provider, "accepted"), metrics.WEBHOOK_BYTES.labels(provider)


def body_timeout_detail(timeout: float) -> str:
    return (
        f"the request body took over {timeout:g} s to arrive "
        "(setting DD0C_HTTP_BODY_TIMEOUT_SECONDS)"
    )


def _annotate(tenant_id: str, provider: str, event_id: str | None, refused: str | None) -> None:
    """Name the delivery on the webhook span (when one records)."""
    span = trace.get_current_span() if tracing.enabled() else None
    if span is not None and span.is_recording():
        span.set_attribute("dd0c.tenant_id", tenant_id[:64])
        span.set_attribute("dd0c.provider", provider if provider in PROVIDERS else "unknown")
        if event_id is not None:
            span.set_attribute("dd0c.event_id", event_id)
        if refused is not None:
            span.set_attribute("dd0c.refused", refused)


async def _read_body(receive: Receive, cap: int, timeout: float) -> bytes | None:
    """The request body; it stops reading once past ``cap`` (the result is then longer
    than ``cap``); None if the client disconnected first. TimeoutError if the whole
    body takes longer than ``timeout`` seconds to arrive (uvicorn has no body timeout;
    a per-chunk one would still let a trickle through). One ``asyncio.timeout`` for
    the whole body: ``wait_for`` made a task per call, a tenth of admission's time."""
    async with asyncio.timeout(timeout):
        message = await receive()
        if message["type"] != "http.request":
            return None
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return body  # the usual case: the whole body in one message
        chunks = [body]
        size = len(body)
        while size <= cap:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


async def _json(
    send: Send, status: int, content: Any, headers: Mapping[str, str] | None = None
) -> None:
    body = orjson.dumps(content)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append(_JSON)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, reason: str, detail: str, headers: Mapping[str, str] | None = None
) -> None:
    """The error shape of responses.error_response."""
    await _json(send, status, {"error": reason, "detail": detail}, headers)


# --- OpenAPI -------------------------------------------------------------------------------


def _responses() -> dict[str, dict[str, Any]]:
    return {
        "202": {
            "description": 'Committed to the queue: `{"event_id", "status": "accepted"}`.',
            "content": {"application/json": {"schema": {}}},
        },
        "200": {"description": 'A delivery id seen in the last 24 h: `{"status": "duplicate"}`.'},
        "400": {"description": "`invalid_json`: the body does not parse (or is not UTF-8)."},
        "401": {
            "description": "`missing_signature`, `signature_mismatch`, `timestamp_expired`, "
            "`invalid_timestamp`, `secret_rotated` (the integration's previous secret, after "
            "its overlap ended) or `unknown_integration`. Nothing is stored."
        },
        "404": {
            "description": "`unknown_provider` (an unknown tenant is answered 401 "
            "`unknown_integration`, like a tenant without this integration)."
        },
        "408": {"description": "`request_timeout`: the body took too long to arrive."},
        "413": {"description": "`body_too_large`."},
        "415": {"description": "`unsupported_media_type`: a compressed body (send plain JSON)."},
        "429": {"description": "`rate_limited` or `quota_exceeded`, with `Retry-After`."},
        "503": {
            "description": "`unavailable`: the queue could not commit the delivery (disk "
            "full, database away); `secret_key_mismatch`: the server's secret key cannot "
            "read this integration's stored secret (for its operator to fix). Nothing was "
            "stored. Send it again (`Retry-After`)."
        },
    }


def _operation(operation_id: str, summary: str, *params: str) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["webhooks"],
            "summary": summary,
            "operationId": operation_id,
            "parameters": [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "title": name.replace("_", " ").title()},
                }
                for name in params
            ],
            "requestBody": {"content": {"application/json": {"schema": {}}}, "required": True},
            "responses": _responses(),
        }
    }


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI path items of the two webhook paths, as FastAPI generated them when
    they were routes (operation ids kept, for client generators)."""
    return {
        "/v1/wh/{tenant_id}/{provider}": _operation(
            "receive_v1_wh__tenant_id___provider__post",
            "Receive a webhook from a monitoring or CI/CD tool",
            "tenant_id",
            "provider",
        ),
        "/v1/wh/{tenant_id}/{provider}/{integration_id}": _operation(
            "receive_for_integration_v1_wh__tenant_id___provider___integration_id__post",
            "Receive a webhook for one of several integrations of a provider",
            "tenant_id",
            "provider",
            "integration_id",
        ),
    }

"""Outbound webhooks: incident events as signed JSON, per the Standard Webhooks spec.

Every event is one JSON object (UTF-8, compact)::

    {
      "version": "1",                       # this schema; a breaking change bumps it
      "type": "incident.opened",            # incident.<opened|updated|acknowledged|resolved|
                                            #   reopened|escalated|merged|snoozed>
      "id": "01J…",                         # the event id (a ULID), = the webhook-id header
      "timestamp": "2026-11-27T10:00:00Z",  # when the event happened (UTC)
      "incident": {
        "id", "tenant_id", "title", "url",
        "severity": "critical|high|medium|low|info",
        "status": "open|acknowledged|resolved|snoozed",
        "services": [str], "probable_root": str|null,
        "alert_count": int, "dedup_count": int, "flapping": bool,
        "noise_score": 0-100, "noise_reasons": [str],
        "opened_at", "acknowledged_at", "resolved_at", "snoozed_until": ISO 8601 or null,
        "acknowledged_by", "resolved_by": str|null,
        "deploys": [{"service", "version", "author", "title", "url", "environment",
                     "started_at"}],
        "top_alerts": [{"title", "severity", "service", "status", "repeat_count", "source",
                        "source_url", "started_at"}]
      }
    }

Headers: ``webhook-id`` (the event id, the same on every retry so receivers can drop
repeats), ``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature:
v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. A secret written
``whsec_<base64>`` is used as the decoded bytes, any other secret as its UTF-8 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

import httpx

from .base import DeliveryError, Receipt, classify_http
from .facts import utc
from .model import IncidentView, NotificationEvent

SCHEMA_VERSION = "1"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc(moment).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """Dataclass fields as JSON values: datetimes in ISO 8601 UTC, tuples as lists."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def render_event(
    incident: IncidentView, event: NotificationEvent, *, event_id: str, at: datetime
) -> bytes:
    """The exact bytes to send (and sign) for ``event`` on ``incident``."""
    document = {
        "version": SCHEMA_VERSION,
        "type": f"incident.{event}",
        "id": event_id,
        "timestamp": _iso(at),
        "incident": _plain(asdict(incident)),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def secret_key(secret: str) -> bytes:
    """The HMAC key: ``whsec_<base64>`` decoded, else the secret's UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


class WebhookSender:
    """POSTs signed events. Redirects are not followed (a moved endpoint is a
    configuration error to show, not to chase), and no error names the URL, since
    webhook URLs often carry a token in their path.

    A receiver cannot hold the notifier: the whole exchange (connect, send, answer)
    has one deadline, ``timeout``, and of the answer's body only the first
    ``ANSWER_EXCERPT_BYTES`` are read (for the error shown), however much it sends or
    however slowly."""

    NAME = "webhook"
    ANSWER_EXCERPT_BYTES = 4096

    def __init__(self, *, timeout: float = 5.0, client: httpx.AsyncClient | None = None):
        self._timeout = timeout
        self._client = client

    async def send(
        self, url: str, body: bytes, *, webhook_id: str, secret: str, now: float | None = None
    ) -> Receipt:
        """Deliver ``body`` as is; ``webhook_id`` must be the same on every retry.
        Each attempt is signed with its own timestamp, as the spec asks."""
        timestamp = int(time.time() if now is None else now)
        headers = signed_headers(secret, webhook_id, timestamp, body)
        try:
            async with asyncio.timeout(self._timeout):
                if self._client is not None:
                    failure = await self._post(self._client, url, body, headers)
                else:
                    async with httpx.AsyncClient(timeout=self._timeout) as client:
                        failure = await self._post(client, url, body, headers)
        except (httpx.TimeoutException, TimeoutError) as error:
            raise DeliveryError(
                "timeout", f"no answer in {self._timeout:g}s ({type(error).__name__})", retry=True
            ) from None
        except httpx.TransportError as error:
            raise DeliveryError(
                "server", f"connection failed ({type(error).__name__})", retry=True
            ) from None
        if failure is not None:
            raise failure
        return Receipt(ref=webhook_id)

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
    ) -> DeliveryError | None:
        """One POST; the error its answer means, if any. A 2xx body is never read."""
        request = client.build_request("POST", url, content=body, headers=headers)
        response = await client.send(request, stream=True)
        try:
            if 200 <= response.status_code < 300:
                return None
            excerpt = b""
            async for chunk in response.aiter_raw():
                excerpt += chunk
                if len(excerpt) >= self.ANSWER_EXCERPT_BYTES:
                    break
            return classify_http(
                response.status_code, response.headers, excerpt[: self.ANSWER_EXCERPT_BYTES]
            )
        finally:
            await response.aclose()

"""Outbound webhooks: the JSON event, its Standard Webhooks signature (checked here
independently of the module), and delivery to the receiver stand-in."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import tracemalloc
from datetime import UTC, datetime

import pytest
from notify_samples import assert_snapshot, resolved

from dd0c_alert import logs
from dd0c_alert.notify.base import DeliveryError
from dd0c_alert.notify.webhook import WebhookSender, render_event
from stand_ins.webhook_receiver import WebhookReceiver

AT = datetime(2026, 11, 27, 10, 42, 5, tzinfo=UTC)
RAW_KEY = b"\x01\x02secret-bytes\xff"
WHSEC = "whsec_" + base64.b64encode(RAW_KEY).decode()


def _expected(key: bytes, headers: dict[str, str], body: bytes) -> str:
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_event_body_snapshot() -> None:
    body = render_event(resolved(), "resolved", event_id="evt_1", at=AT)
    document = json.loads(body)
    assert (document["version"], document["type"], document["id"]) == (
        "1",
        "incident.resolved",
        "evt_1",
    )
    assert document["timestamp"] == "2026-11-27T10:42:05Z"
    assert document["incident"]["resolved_at"] == "2026-11-27T10:42:05Z"
    assert_snapshot("webhook_resolved", document)


@pytest.mark.parametrize(
    ("secret", "key"), [(WHSEC, RAW_KEY), ("plain-text-secret", b"plain-text-secret")]
)
def test_delivery_is_signed_per_the_spec(secret: str, key: bytes) -> None:
    body = render_event(resolved(), "resolved", event_id="evt_1", at=AT)
    with WebhookReceiver() as hook:
        receipt = asyncio.run(
            WebhookSender().send(
                hook.url, body, webhook_id="evt_1", secret=secret, now=1_800_000_000
            )
        )
        [request] = hook.requests
    assert receipt.ref == "evt_1"
    assert request.body == body
    assert request.headers["webhook-id"] == "evt_1"
    assert request.headers["webhook-timestamp"] == "1800000000"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"] == _expected(key, request.headers, body)


def test_retries_keep_the_webhook_id_and_honour_retry_after() -> None:
    body = b'{"x":1}'
    sender = WebhookSender(timeout=0.5)
    with WebhookReceiver() as hook:
        hook.script("429:9", "503", "hang:3", "410")
        errors = []
        for _ in range(4):
            with pytest.raises(DeliveryError) as caught:
                asyncio.run(sender.send(hook.url, body, webhook_id="evt_7", secret="s"))
            errors.append(caught.value)
        asyncio.run(sender.send(hook.url, body, webhook_id="evt_7", secret="s"))
        ids = {r.headers["webhook-id"] for r in hook.requests}
    assert [(e.reason, e.retry) for e in errors] == [
        ("rate_limited", True),
        ("server", True),
        ("timeout", True),
        ("client", False),
    ]
    assert errors[0].retry_after == 9.0
    assert ids == {"evt_7"} and len(hook.requests) == 5


def test_errors_name_neither_secret_nor_url() -> None:
    url_token = "T0KEN-in-the-path"
    for answer in ("500", "401"):
        with WebhookReceiver() as hook:
            hook.script(answer)
            with pytest.raises(DeliveryError) as caught:
                asyncio.run(
                    WebhookSender().send(
                        hook.url + "/" + url_token, b"{}", webhook_id="e", secret="whsec_c2VjcmV0"
                    )
                )
        assert url_token not in str(caught.value) and "c2VjcmV0" not in str(caught.value)
    with WebhookReceiver() as gone:
        url = gone.url + "/" + url_token
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(WebhookSender().send(url, b"{}", webhook_id="e", secret="s"))
    assert caught.value.retry and url_token not in str(caught.value)


def test_a_huge_answer_is_not_read_into_memory() -> None:
    """A receiver (or a proxy in front of it) answering with an endless error page
    must not make the notifier hold it: only an excerpt is read."""
    with WebhookReceiver() as hook:
        hook.script("big:64:502", "big:64")
        tracemalloc.start()
        try:
            with pytest.raises(DeliveryError) as caught:
                asyncio.run(WebhookSender().send(hook.url, b"{}", webhook_id="e", secret="s"))
            asyncio.run(WebhookSender().send(hook.url, b"{}", webhook_id="e", secret="s"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (caught.value.reason, caught.value.retry) == ("server", True)
    assert caught.value.message.startswith("HTTP 502: xxx")
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB held for a 64 MiB answer"


def test_a_trickling_answer_ends_at_the_deadline() -> None:
    """Each byte arriving within the read timeout must not keep the lane for ever."""
    with WebhookReceiver() as hook:
        hook.script("drip:30:500")
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(
                WebhookSender(timeout=1.5).send(hook.url, b"{}", webhook_id="e", secret="s")
            )
    assert time.monotonic() - started < 10  # the answer's 30 bytes take 15 s
    assert (caught.value.reason, caught.value.retry) == ("timeout", True)


def test_a_redirect_is_not_followed() -> None:
    """A moved endpoint is shown as a configuration error, never chased (to another
    host, or an internal address)."""
    with WebhookReceiver() as hook:
        hook.script("redirect:307")
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(WebhookSender().send(hook.url, b"{}", webhook_id="e", secret="s"))
        assert [r.path for r in hook.requests] == ["/hook"]
    assert (caught.value.reason, caught.value.permanent) == ("client", True)


@pytest.mark.parametrize("level", ["info", "debug"])
def test_the_webhook_url_never_reaches_a_log(level: str, caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every request's full URL; a webhook URL often carries its token."""
    caplog.set_level(logging.DEBUG)
    logs.configure(level)  # conftest puts the logs back as they were after the test
    with WebhookReceiver() as hook:
        hook.script("500")
        for _ in range(2):
            with contextlib.suppress(DeliveryError):
                asyncio.run(
                    WebhookSender().send(
                        hook.url + "/T0KEN-in-the-path", b"{}", webhook_id="e", secret="s"
                    )
                )
    assert len(hook.requests) == 2
    assert not [r.getMessage() for r in caplog.records if "T0KEN" in r.getMessage()]

"""Test notifications: one clearly marked message to each destination of a route (or to
the tenant's default Slack channel), sent now, through the real senders.

A test alert cannot show that Slack or mail works: a second one folds into the open
test incident as a repeat and nothing is sent. This sends no incident at all, only a
line saying it is a test, and answers what each destination said, worded as the
deliveries API words a failure (``DeliveryError.message``; never a secret, never a
webhook's path). Destinations are tried side by side, each bounded by its sender's
own timeout, so the whole test takes as long as the slowest destination.

Nothing is queued, retried or recorded as a delivery: a test that fails says so at
once, and does not stop the destination or page anyone.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import structlog

from dd0c_alert.notify.base import DeliveryError
from dd0c_alert.notify.routing import (
    Destination,
    EmailDestination,
    Route,
    SlackDestination,
    WebhookDestination,
    destination_key,
    every_destination,
)
from dd0c_alert.storage.outbox import shown_destination

from .senders import Senders

log = structlog.get_logger(__name__)

#: The webhook event ``type`` of a test (incident events are ``incident.<event>``).
WEBHOOK_TEST_TYPE = "test"


@dataclass(frozen=True, slots=True)
class TrialResult:
    """What one destination said: ``destination`` as the API shows it elsewhere."""

    type: str
    destination: str
    ok: bool
    error: str | None


def test_text(route_name: str | None) -> str:
    """The one line every test says, so nobody takes it for a page."""
    if route_name is None:
        return "Test notification from dd0c/alert: the default Slack channel works"
    return f"Test notification from dd0c/alert: route {route_name} works"


def destinations_of(route: Route) -> list[Destination]:
    """A route's destinations and its escalation's, each once: a test checks every
    place the route can send to."""
    found: list[Destination] = []
    for destination in every_destination(route):
        if destination not in found:
            found.append(destination)
    return found


async def send_tests(
    senders: Senders, tenant_id: str, destinations: list[Destination], text: str
) -> list[TrialResult]:
    """Send ``text`` to every destination at once; one result each, in order."""
    return list(await asyncio.gather(*(_try(senders, tenant_id, d, text) for d in destinations)))


async def _try(
    senders: Senders, tenant_id: str, destination: Destination, text: str
) -> TrialResult:
    kind, target = destination_key(destination)
    shown = shown_destination(kind, target)
    error: str | None = None
    try:
        await _sender_of(senders, tenant_id, destination, text)()
    except DeliveryError as failure:
        error = failure.message
    except Exception as exc:  # a bug: said as the notifier says it, never a 500
        log.exception("test_notification_failed_unexpectedly", destination_type=kind)
        error = f"internal error: {type(exc).__name__}"
    log.info(
        "test_notification",
        tenant_id=tenant_id,
        destination_type=kind,
        ok=error is None,
        error=None if error is None else error[:300],  # the sender's words: no secret
    )
    return TrialResult(kind, shown, error is None, error)


def _sender_of(
    senders: Senders, tenant_id: str, destination: Destination, text: str
) -> Callable[[], Awaitable[object]]:
    """The one call that sends the test to ``destination``."""
    if isinstance(destination, SlackDestination):
        return lambda: _slack(senders, tenant_id, destination.channel, text)
    if isinstance(destination, EmailDestination):
        return lambda: _mail(senders, destination.to, text)
    return lambda: _webhook(senders, tenant_id, destination, text)


async def _slack(senders: Senders, tenant_id: str, channel: str, text: str) -> object:
    block = {"type": "section", "text": {"type": "mrkdwn", "text": f":white_check_mark: {text}"}}
    marker = f"test-{secrets.token_hex(8)}"  # no incident: metadata that matches none
    return await senders.slack(tenant_id).post(channel, [block], text, marker, tenant_id)


async def _mail(senders: Senders, to: tuple[str, ...], text: str) -> object:
    smtp = senders.smtp()
    mail = EmailMessage()
    mail["Subject"] = "dd0c/alert: test notification"
    mail["From"] = senders.mail_from
    mail["To"] = ", ".join(to)
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid("test", senders.mail_domain())
    mail.set_content(f"{text}.\n\nThis is a test: no incident is open and no one was paged.\n")
    return await smtp.send(mail)


async def _webhook(
    senders: Senders, tenant_id: str, destination: WebhookDestination, text: str
) -> object:
    event_id = f"evt_test_{secrets.token_hex(8)}"
    now = time.time()
    body = {
        "version": "1",
        "type": WEBHOOK_TEST_TYPE,
        "id": event_id,
        "timestamp": datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tenant_id": tenant_id,
        "text": text,
    }
    data = json.dumps(body, separators=(",", ":")).encode()
    return await senders.webhook().send(
        destination.url, data, webhook_id=event_id, secret=destination.secret, now=now
    )

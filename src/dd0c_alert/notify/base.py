"""The one error every sender raises, and the HTTP status classifier they share.

The notifier decides what to do from ``DeliveryError`` alone: retry later (honouring
``retry_after``), or stop the destination and tell the tenant (``permanent``). Messages
never carry credentials, because they are stored on delivery attempts and shown in
the API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

Reason = Literal["rate_limited", "auth", "client", "server", "timeout", "unknown_outcome"]

_BODY_EXCERPT = 200


class DeliveryError(Exception):
    """A delivery failed; ``retry`` says whether trying again can help.

    ``unknown_outcome`` means the request may have been accepted (a timeout or a
    dropped connection after sending a post): retry only after checking whether it
    landed, or a page is sent twice.
    """

    def __init__(
        self, reason: Reason, message: str, *, retry: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: Reason = reason
        self.message = message
        self.retry = retry
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        """Retrying cannot help: the destination needs a human (token, channel, URL)."""
        return not self.retry


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of delivery: a reference to find the message again (Slack ``channel:ts``,
    a mail's Message-ID, a webhook id)."""

    ref: str


#: The longest ``Retry-After`` obeyed. A 429 never uses up a delivery's tries, so a
#: receiver answering ``Retry-After: 1e20`` (or ``inf``, which overflowed the retry
#: time) would hold that incident's later events to it for ever.
MAX_RETRY_AFTER_SECONDS = 600.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date),
    from 0 to ``MAX_RETRY_AFTER_SECONDS``; ``None`` when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def classify_http(
    status: int, headers: Mapping[str, str], body: bytes | str = b""
) -> DeliveryError | None:
    """``None`` for 2xx; otherwise the error to raise. 429, 408 and 5xx retry
    (honouring ``Retry-After``); any other status is permanent (a 3xx too: senders do
    not follow redirects, so the configured URL is wrong)."""
    if 200 <= status < 300:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    message = f"HTTP {status}" + (f": {text[:_BODY_EXCERPT]}" if text.strip() else "")
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    if status == 429:
        return DeliveryError("rate_limited", message, retry=True, retry_after=retry_after)
    if status == 408:
        return DeliveryError("timeout", message, retry=True, retry_after=retry_after)
    if status >= 500:
        return DeliveryError("server", message, retry=True, retry_after=retry_after)
    if status in (401, 403):
        return DeliveryError("auth", message, retry=False)
    return DeliveryError("client", message, retry=False)

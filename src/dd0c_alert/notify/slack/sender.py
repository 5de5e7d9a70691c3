"""Posting, updating and finding incident messages through the Slack Web API.

Retries belong to the notifier (paced per channel, with backoff and a breaker), so
slack_sdk's own retry handlers are switched off and every failure becomes one
``DeliveryError``. The one dangerous failure is a post whose answer never arrived:
Slack may have accepted it. That is ``unknown_outcome``; the caller then asks
:meth:`SlackSender.find_existing`, which looks for the message by the incident id
carried in its metadata, before posting again — so an incident never gets two
messages.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from dd0c_alert.notify.base import (
    DeliveryError,
    Reason,
    Receipt,
    classify_http,
    parse_retry_after,
)

from .render import Block

DEFAULT_API_URL = "https://slack.com/api/"
METADATA_EVENT = "dd0c_incident"
#: Slack error codes no retry can fix, by the reason shown to the tenant.
PERMANENT_ERRORS: dict[str, Reason] = {
    "invalid_auth": "auth",
    "token_revoked": "auth",
    "account_inactive": "auth",
    "missing_scope": "auth",
    "not_authed": "auth",
    "channel_not_found": "client",
    "is_archived": "client",
    "not_in_channel": "client",
}
RETRYABLE_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable"})
#: chat.update's answers when the message is no longer there to update (someone deleted
#: it): the incident needs a new message, not a stopped channel.
GONE_ERRORS = frozenset({"message_not_found", "cant_update_message"})
#: Refusals of one message's content (its blocks, text or metadata), not of the channel:
#: alert text decides much of a message, so a plainer one is tried before giving up.
CONTENT_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "too_many_attachments",
        "invalid_attachments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
    }
)
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
_MAX_PAGES = 50


@dataclass(frozen=True, slots=True)
class SlackReceipt(Receipt):
    """A posted message: ``ref`` is ``channel_id:ts``, kept to update it later."""

    channel_id: str = ""
    ts: str = ""

    @classmethod
    def of(cls, channel_id: str, ts: str) -> SlackReceipt:
        return cls(ref=f"{channel_id}:{ts}", channel_id=channel_id, ts=ts)


class MessageGone(DeliveryError):
    """chat.update found no message to update: it was deleted in Slack."""


class ContentRefused(DeliveryError):
    """Slack refused this message's content (``invalid_blocks``, ``msg_too_long``, …).
    Retrying the same message cannot help, but the channel is fine: one odd alert must
    not stop the channel for every other incident."""


def _api_error(method: str, error: SlackApiError, lost: Reason) -> DeliveryError:
    """The DeliveryError for a refusal or an unreadable answer. ``lost`` is the reason
    when the answer says nothing about the outcome: an answer that is not Slack's (a
    proxy's HTML page, a body cut short) may follow a post that landed."""
    response = error.response
    # slack_sdk hands over its own response for a well-formed answer, and aiohttp's
    # (no ``data``; ``status``) when the JSON body could not be parsed.
    data = getattr(response, "data", None)
    data = data if isinstance(data, dict) else {}
    code = str(data.get("error") or "")
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    headers = {str(k): str(v) for k, v in dict(getattr(response, "headers", None) or {}).items()}
    if code in PERMANENT_ERRORS:
        return DeliveryError(PERMANENT_ERRORS[code], f"{method}: {code}", retry=False)
    if code == "ratelimited" or status == 429:
        wait = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
        return DeliveryError("rate_limited", f"{method}: ratelimited", retry=True, retry_after=wait)
    if code in RETRYABLE_ERRORS:
        return DeliveryError("server", f"{method}: {code}", retry=True)
    if code in GONE_ERRORS:
        return MessageGone("client", f"{method}: {code}", retry=False)
    if code in CONTENT_ERRORS:
        return ContentRefused("client", f"{method}: {code}", retry=False)
    http = classify_http(status, headers)
    if http is not None:
        return DeliveryError(
            http.reason, f"{method}: {http.message}", retry=http.retry, retry_after=http.retry_after
        )
    if "ok" not in data:  # a 2xx that is no Slack answer: the outcome is unknown
        return DeliveryError(lost, f"{method}: unreadable answer (HTTP {status})", retry=True)
    # A well-formed refusal we do not know (invalid_blocks, msg_too_long, …): permanent.
    return DeliveryError("client", f"{method}: {code or 'unexpected answer'}", retry=False)


class SlackSender:
    """One tenant's bot talking to Slack (or to the local stand-in at ``base_url``)."""

    NAME = "slack"

    def __init__(self, token: str, *, base_url: str = DEFAULT_API_URL, timeout: float = 5.0):
        self._timeout = timeout
        self._client = AsyncWebClient(
            token=token,
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            timeout=max(1, int(timeout + 0.999)),
            retry_handlers=[],
        )
        self._channel_ids: dict[str, str] = {}

    async def _call(
        self, method: str, call: Callable[[], Awaitable[AsyncSlackResponse]], *, may_land: bool
    ) -> Mapping[str, Any]:
        """Run one API call; every failure becomes a DeliveryError. ``may_land``: the
        call creates something, so a lost answer is an unknown outcome, not a timeout."""
        lost: Reason = "unknown_outcome" if may_land else "timeout"
        try:
            async with asyncio.timeout(self._timeout):
                response = await call()
        except SlackApiError as error:
            raise _api_error(method, error, "unknown_outcome" if may_land else "server") from None
        except TimeoutError:
            raise DeliveryError(
                lost, f"{method}: no answer in {self._timeout:g}s", retry=True
            ) from None
        except aiohttp.ClientConnectorError as error:  # never reached Slack: safe to retry
            raise DeliveryError(
                "server", f"{method}: cannot connect ({type(error).__name__})", retry=True
            ) from None
        except aiohttp.ClientError as error:
            raise DeliveryError(
                lost, f"{method}: connection lost ({type(error).__name__})", retry=True
            ) from None
        data = response.data
        return data if isinstance(data, dict) else {}

    async def post(
        self, channel: str, blocks: list[Block], text: str, incident_id: str, tenant_id: str
    ) -> SlackReceipt:
        """Post the incident's message; the receipt holds the channel *id* and ``ts``."""
        metadata = {
            "event_type": METADATA_EVENT,
            "event_payload": {"incident_id": incident_id, "tenant_id": tenant_id},
        }
        data = await self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel, blocks=blocks, text=text, metadata=metadata
            ),
            may_land=True,
        )
        channel_id = str(data.get("channel", ""))
        if channel.lstrip("#") != channel_id:
            self._channel_ids[channel] = channel_id
        return SlackReceipt.of(channel_id, str(data.get("ts", "")))

    async def update(
        self, channel_id: str, ts: str, blocks: list[Block], text: str
    ) -> SlackReceipt:
        """Replace the message in place (idempotent: a retry shows the same state).
        Raises :class:`MessageGone` when the message was deleted."""
        await self._call(
            "chat.update",
            lambda: self._client.chat_update(channel=channel_id, ts=ts, blocks=blocks, text=text),
            may_land=False,
        )
        return SlackReceipt.of(channel_id, ts)

    async def reply(self, channel_id: str, thread_ts: str, text: str) -> SlackReceipt:
        """A reply in the message's thread. A lost answer is ``unknown_outcome``: a
        retry may repeat the reply, which the caller may accept (a reply is not a page)."""
        data = await self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel_id, thread_ts=thread_ts, text=text
            ),
            may_land=True,
        )
        return SlackReceipt.of(channel_id, str(data.get("ts", "")))

    async def resolve_channel(self, channel: str) -> str:
        """The id of ``channel`` (``#name``, ``name`` or already an id), looked up with
        ``conversations.list`` and remembered for the life of this sender."""
        name = channel.lstrip("#")
        if _CHANNEL_ID.fullmatch(name):
            return name
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            data = await self._call(
                "conversations.list",
                lambda c=cursor: self._client.conversations_list(  # type: ignore[misc]
                    cursor=c, limit=200, types="public_channel,private_channel"
                ),
                may_land=False,
            )
            for found in data.get("channels", []):
                if found.get("name") == name:
                    self._channel_ids[channel] = str(found["id"])
                    return str(found["id"])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        raise DeliveryError("client", "conversations.list: channel_not_found", retry=False)

    async def find_existing(
        self, channel: str, incident_id: str, since: datetime
    ) -> tuple[str, str] | None:
        """``(channel_id, ts)`` of the incident's message posted since ``since``, found
        by its metadata; ``None`` when there is none (then posting is safe)."""
        channel_id = await self.resolve_channel(channel)
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            data = await self._call(
                "conversations.history",
                lambda c=cursor: self._client.conversations_history(  # type: ignore[misc]
                    channel=channel_id,
                    oldest=f"{since.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=c,
                ),
                may_land=False,
            )
            for message in data.get("messages", []):
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if (
                    meta.get("event_type") == METADATA_EVENT
                    and payload.get("incident_id") == incident_id
                ):
                    return channel_id, str(message["ts"])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return None
        return None

    async def auth_test(self) -> Mapping[str, Any]:
        """Who the token belongs to (team, bot user): checks a token when it is configured."""
        return await self._call("auth.test", self._client.auth_test, may_land=False)

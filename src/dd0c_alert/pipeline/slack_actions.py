"""Slack talking to dd0c/alert: button clicks, the ``/dd0c`` slash command, and the
per-tenant Slack settings behind them.

Slack signs each request with the app's signing secret and says which workspace sent
it, not which tenant. Every tenant whose settings name that workspace (or name none
yet, before ``auth.test`` could tell) is a candidate; only those whose signing secret
verifies the request are acted for, so a request signed for one tenant can never
touch another tenant's incident — the incident id is looked up within the verified
tenants only.

The work is one short database write, done before answering: well inside Slack's 3 s.
The living incident message is not touched here: ``incident_action`` writes a
notification intent and the notifier updates the message (``pipeline/notifier.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs

import structlog

from dd0c_alert.notify.base import DeliveryError
from dd0c_alert.notify.slack import SlackSender, verify_slack_signature
from dd0c_alert.notify.slack.signature import MAX_SKEW_SECONDS
from dd0c_alert.notify.slack.text import clip_mrkdwn, escape
from dd0c_alert.storage.notify_settings import SqlNotifySettings
from dd0c_alert.storage.ports import (
    IncidentAction,
    IncidentFilter,
    InvalidTransition,
    Store,
    Verdict,
)
from dd0c_alert.storage.seen_requests import SeenRequests

log = structlog.get_logger(__name__)

SlackRefusal = Literal["missing_signature", "timestamp_expired", "signature_mismatch", "replayed"]
#: How long a used request is remembered. Its timestamp verifies while it is within
#: 300 s of a process's clock, either way, so 600 s covers every moment it could verify
#: again; the minute more covers ``api`` processes whose clocks disagree a little.
REPLAY_WINDOW_SECONDS = 2 * MAX_SKEW_SECONDS + 60
#: Button ``action_id`` -> (incident action, snooze minutes) or feedback verdict.
ACTIONS: dict[str, tuple[IncidentAction, int]] = {
    "ack": ("ack", 60),
    "resolve": ("resolve", 60),
    "snooze_1h": ("snooze", 60),
    "snooze_4h": ("snooze", 240),
    "snooze_24h": ("snooze", 1440),
}
VERDICTS: dict[str, Verdict] = {"noise": "noise", "useful": "useful"}
MUTE_SIMILAR = "mute_similar"
_DONE = {
    "ack": "Acknowledged",
    "resolve": "Resolved",
    "snooze": "Snoozed",
    "reopen": "Reopened",
}
#: ``#name`` (Slack: lowercase letters, digits, ``-``, ``_``, ``.``; 80 at most) or a
#: public/private channel id.
_CHANNEL = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{6,20}")
_INCIDENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
LIST_SIZE = 10
#: ``/dd0c status`` counts up to this many incidents per state, then says "N+".
COUNT_CAP = 2000
HELP = (
    "Usage: `/dd0c list` (open incidents), `/dd0c status` (counts by state), "
    "`/dd0c ack ID`, `/dd0c resolve ID`."
)


class SlackRefused(Exception):
    """The request is not provably from a tenant's Slack app (401 ``reason``)."""

    def __init__(self, reason: SlackRefusal) -> None:
        super().__init__(reason)
        self.reason: SlackRefusal = reason


@dataclass(frozen=True, slots=True)
class SlackUser:
    id: str
    name: str

    @property
    def actor(self) -> str:
        """How the person is named on the incident's timeline and in logs."""
        return f"slack:{self.id} ({self.name})" if self.name else f"slack:{self.id}"


@dataclass(frozen=True, slots=True)
class Click:
    """One button of a ``block_actions`` interaction."""

    user: SlackUser
    action_id: str
    value: str


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def interaction_team(body: bytes) -> tuple[str, dict[str, Any]]:
    """The workspace id and the decoded ``payload`` of an interaction (empty when it
    is not one: the signature check then refuses it)."""
    try:
        payload = json.loads(_form(body).get("payload", ""))
    except ValueError:
        return "", {}
    if not isinstance(payload, dict):
        return "", {}
    team = payload.get("team")
    team_id = team.get("id") if isinstance(team, dict) else None
    return (team_id if isinstance(team_id, str) else ""), payload


def command_form(body: bytes) -> dict[str, str]:
    """A slash command's form fields (``team_id``, ``user_id``, ``user_name``, ``text``)."""
    return _form(body)


def verified_tenants(
    notify_settings: SqlNotifySettings,
    team_id: str,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float,
) -> list[str]:
    """The tenants whose Slack signing secret signed ``body``; ``SlackRefused`` when
    none did. A stale timestamp is refused before any secret is looked at."""
    if not timestamp or not signature:
        raise SlackRefused("missing_signature")
    if timestamp.isascii() and timestamp.isdigit() and abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise SlackRefused("timestamp_expired")
    verified: list[str] = []
    for tenant_id in notify_settings.tenants_for_slack_team(team_id) if team_id else ():
        settings = notify_settings.slack(tenant_id)
        if settings is not None and verify_slack_signature(
            body, timestamp, signature, settings.signing_secret, now=now
        ):
            verified.append(tenant_id)
    if not verified:
        raise SlackRefused("signature_mismatch")
    return verified


def claim_once(seen: SeenRequests, timestamp: str, signature: str) -> str:
    """Claim a verified request for this one use; ``SlackRefused("replayed")`` when
    it was used before (a captured request sent again, or Slack's own retry). The
    signature stands for the request: it is an HMAC of the timestamp and the body.
    Returns the claim's key, to ``release`` should the work fail."""
    digest = hashlib.sha256(f"{timestamp}:{signature}".encode("utf-8", "replace")).hexdigest()
    key = f"slack:{digest}"
    if not seen.claim(key, REPLAY_WINDOW_SECONDS):
        raise SlackRefused("replayed")
    return key


def click_of(payload: dict[str, Any]) -> Click | None:
    """The first button of a ``block_actions`` payload; ``None`` for anything else
    (Slack sends other interaction types that need nothing but a 200)."""
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    user = payload.get("user")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return None
    user = user if isinstance(user, dict) else {}
    name = user.get("username") or user.get("name") or ""
    return Click(
        user=SlackUser(str(user.get("id") or "unknown"), str(name)),
        action_id=str(actions[0].get("action_id") or ""),
        value=str(actions[0].get("value") or ""),
    )


class SlackActions:
    """What a verified click or command does, for the tenants that signed it.

    Each change is in the tenant's audit log as the API's own would be (``incident.ack``,
    ``incident.feedback``, …), its actor the Slack user (``slack:U…``) and ``client`` the
    address Slack's request came from: a change made from Slack is no less a change.
    """

    def __init__(self, store: Store, client: str = "") -> None:
        self._store = store
        self._client = client

    def _audit(
        self,
        tenant_id: str,
        user: SlackUser,
        action: str,
        incident_id: str,
        detail: dict[str, Any],
    ) -> None:
        self._store.product().record_audit(
            tenant_id,
            actor=user.actor,
            action=action,
            target_type="incident",
            target_id=incident_id,
            detail={"via": "slack", **detail},
            client=self._client,
        )

    def click(self, tenants: Sequence[str], click: Click) -> str:
        """Apply a button; the text to show the clicker."""
        if click.action_id == MUTE_SIMILAR:
            return self.mute_similar(tenants, click.value, click.user)
        if click.action_id in ACTIONS:
            action, minutes = ACTIONS[click.action_id]
            return self.act(tenants, click.value, action, click.user, minutes)
        if click.action_id in VERDICTS:
            return self.feedback(tenants, click.value, VERDICTS[click.action_id], click.user)
        return f"Unknown action `{escape(click.action_id)}`."

    def mute_similar(self, tenants: Sequence[str], incident_id: str, user: SlackUser) -> str:
        """Never a silence from a click: a suggestion a person reviews (and can see the
        what-if replay of) before accepting it."""
        if not _INCIDENT_ID.fullmatch(incident_id):
            return _not_found(incident_id)
        for tenant_id in tenants:
            made = self._store.request_mute(tenant_id, incident_id, user.actor)
            if made == "no such incident":
                continue
            if isinstance(made, str):
                return f"Nothing to mute: {escape(made)}."
            detail = {"suggestion_id": str(made["id"])}
            self._audit(tenant_id, user, "incident.mute_requested", incident_id, detail)
            return (
                f"Suggested for review: {escape(str(made['title']))}. Accept or dismiss it "
                f"under suggestions (`POST /v1/suggestions/{made['id']}/accept`)."
            )
        return _not_found(incident_id)

    def act(
        self,
        tenants: Sequence[str],
        incident_id: str,
        action: IncidentAction,
        user: SlackUser,
        snooze_minutes: int = 60,
    ) -> str:
        if not _INCIDENT_ID.fullmatch(incident_id):
            return _not_found(incident_id)
        for tenant_id in tenants:
            try:
                item = self._store.incident_action(
                    tenant_id, incident_id, action, snooze_minutes, actor=user.actor
                )
            except InvalidTransition as exc:
                return f"Nothing changed: {escape(str(exc))}."
            if item is None:
                continue
            log.info(
                "slack_action",
                tenant_id=tenant_id,
                incident_id=incident_id,
                action=action,
                actor=user.actor,
            )
            detail = {"minutes": snooze_minutes} if action == "snooze" else {}
            self._audit(tenant_id, user, f"incident.{action}", incident_id, detail)
            done = _DONE[action]
            if action == "snooze":
                done += f" for {snooze_minutes // 60} h"
            title = clip_mrkdwn(str(item.get("title", "")), 200)
            return f"{done} incident `{incident_id}` ({title}) as {escape(user.actor)}."
        return _not_found(incident_id)

    def feedback(
        self, tenants: Sequence[str], incident_id: str, verdict: Verdict, user: SlackUser
    ) -> str:
        if not _INCIDENT_ID.fullmatch(incident_id):
            return _not_found(incident_id)
        for tenant_id in tenants:
            item = self._store.add_feedback(tenant_id, incident_id, verdict, actor=user.actor)
            if item is None:
                continue
            log.info(
                "slack_feedback",
                tenant_id=tenant_id,
                incident_id=incident_id,
                verdict=verdict,
                actor=user.actor,
            )
            self._audit(tenant_id, user, "incident.feedback", incident_id, {"verdict": verdict})
            return (
                f"Thanks: incident `{item['incident_id']}` marked *{verdict}* by "
                f"{escape(user.actor)}. Later incidents of these alerts count it in their "
                "noise score."
            )
        return _not_found(incident_id)

    def command(self, tenants: Sequence[str], text: str, user: SlackUser) -> str:
        """``/dd0c list | status | ack ID | resolve ID``; anything else: the usage."""
        words = text.split()
        verb = words[0].lower() if words else ""
        if verb == "list" and len(words) == 1:
            return self._list(tenants[0])
        if verb == "status" and len(words) == 1:
            return self._status(tenants[0])
        if verb in ("ack", "resolve") and len(words) == 2:
            action: IncidentAction = "ack" if verb == "ack" else "resolve"
            return self.act(tenants, words[1], action, user)
        return HELP

    def _list(self, tenant_id: str) -> str:
        page = self._store.list_incidents(tenant_id, IncidentFilter(status="open"), LIST_SIZE, None)
        if not page.items:
            return "No open incidents."
        lines = [f"*Open incidents* (newest first, at most {LIST_SIZE}):"]
        for item in page.items:
            services = ", ".join(item.get("services") or []) or "no service"
            lines.append(
                f"• `{item['id']}` [{item['severity']}] {clip_mrkdwn(str(item['title']), 150)} "
                f"({clip_mrkdwn(services, 100)}), {_alerts(int(item['alert_count']))}"
            )
        if page.next_cursor:
            lines.append("More in `GET /v1/incidents?status=open`.")
        return "\n".join(lines)

    def _count(self, tenant_id: str, filters: IncidentFilter) -> str:
        counted, cursor = 0, None
        while counted < COUNT_CAP:
            page = self._store.list_incidents(tenant_id, filters, 500, cursor)
            counted += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return str(counted)
        return f"{COUNT_CAP}+"

    def _status(self, tenant_id: str) -> str:
        day_ago = datetime.now(UTC) - timedelta(days=1)
        opened = self._count(tenant_id, IncidentFilter(status="open"))
        acked = self._count(tenant_id, IncidentFilter(status="acknowledged"))
        resolved = self._count(tenant_id, IncidentFilter(status="resolved", since=day_ago))
        return (
            f"*Incidents*: {opened} open, {acked} acknowledged, "
            f"{resolved} resolved (of those opened in the last 24 h)."
        )


def _not_found(incident_id: str) -> str:
    return f"No incident `{clip_mrkdwn(incident_id, 64)}` here."


# --------------------------------------------------------------------------- settings


def check_channel(channel: str) -> str:
    """A default channel as ``#name`` or a channel id; ``ValueError`` otherwise."""
    value = channel.strip()
    if not _CHANNEL.fullmatch(value):
        raise ValueError(
            f"default_channel {channel!r} must be '#name' (lowercase letters, digits, '-', "
            "'_', '.') or a channel id such as C0123456789"
        )
    return value


TokenCheck = Literal["ok", "unreachable", "rejected"]


class SlackTokenRejected(ValueError):
    """Slack answered ``auth.test`` with an authentication error for the bot token."""


async def check_token(token: str, base_url: str, timeout: float = 3.0) -> tuple[TokenCheck, str]:
    """Ask Slack's ``auth.test`` who the bot token belongs to: ``("ok", team_id)``,
    ``("rejected", error)`` when Slack refused it, or ``("unreachable", "")``.
    Best effort: self-hosted installs are often offline, which must not stop anyone
    from configuring Slack."""
    try:
        async with asyncio.timeout(timeout + 1):
            answer = await SlackSender(token, base_url=base_url, timeout=timeout).auth_test()
    except DeliveryError as exc:
        if exc.reason == "auth":
            return "rejected", exc.message
        return "unreachable", ""
    except (TimeoutError, OSError):
        return "unreachable", ""
    team_id = answer.get("team_id")
    return ("ok", team_id) if isinstance(team_id, str) and team_id else ("unreachable", "")


async def configure_slack(
    notify_settings: SqlNotifySettings,
    tenant_id: str,
    *,
    bot_token: str,
    signing_secret: str,
    default_channel: str,
    slack_api_url: str,
) -> TokenCheck:
    """Store a tenant's Slack settings (secrets encrypted at rest), with the
    workspace id when ``auth.test`` can tell it. ``ValueError`` for a malformed
    channel; ``SlackTokenRejected`` (nothing stored) when Slack answered that the token
    is not valid — an unreachable Slack stores the settings all the same."""
    channel = check_channel(default_channel)
    check, detail = await check_token(bot_token, slack_api_url)
    if check == "rejected":
        raise SlackTokenRejected(f"Slack refused the bot token ({detail})")
    await asyncio.to_thread(
        notify_settings.put_slack,
        tenant_id,
        bot_token=bot_token,
        signing_secret=signing_secret,
        default_channel=channel,
        team_id=detail if check == "ok" else None,
    )
    return check


def slack_view(notify_settings: SqlNotifySettings, tenant_id: str) -> dict[str, Any]:
    """A tenant's Slack settings as the API and CLI show them: never a secret."""
    settings = notify_settings.slack(tenant_id)
    if settings is None:
        return {
            "configured": False,
            "default_channel": None,
            "team_id": None,
            "bot_token": None,
            "signing_secret": None,
        }
    return {
        "configured": True,
        "default_channel": settings.default_channel,
        "team_id": settings.team_id,
        "bot_token": "set" if settings.bot_token else None,
        "signing_secret": "set" if settings.signing_secret else None,
    }


def _alerts(count: int) -> str:
    """Says "1 alert" or "2 alerts": people read the list, and "1 alerts" looked broken."""
    return f"{count} alert" if count == 1 else f"{count} alerts"

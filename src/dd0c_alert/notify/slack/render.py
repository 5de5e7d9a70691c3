"""Incident → Slack Block Kit message, and the thread replies under it (pure).

One message per incident is posted once and then updated in place, so every render
shows the whole current state: the buttons that still make sense (no Ack once
acknowledged, none at all once resolved), and the resolved duration at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dd0c_alert.notify import facts
from dd0c_alert.notify.model import AlertView, DeployView, IncidentView, NotificationEvent

from .text import (
    BUTTON_TEXT_LIMIT,
    BUTTON_VALUE_LIMIT,
    CONTEXT_LIMIT,
    FALLBACK_LIMIT,
    FIELD_LIMIT,
    HEADER_LIMIT,
    SECTION_LIMIT,
    clip,
    clip_mrkdwn,
    fit_lines,
    link,
)

Block = dict[str, Any]
ThreadEvent = Literal["escalated", "merged", "resolved", "reopened"]

#: (action_id, label, style) in display order; the action ids are a stable interface.
BUTTONS: tuple[tuple[str, str, str | None], ...] = (
    ("ack", "Acknowledge", "primary"),
    ("resolve", "Resolve", None),
    ("snooze_1h", "Snooze 1h", None),
    ("snooze_4h", "Snooze 4h", None),
    ("snooze_24h", "Snooze 24h", None),
    ("noise", "Noise", None),
    ("useful", "Useful", None),
    ("mute_similar", "Mute similar…", "danger"),
)
_MAX_LISTED = 5
_TITLE_CHARS = 300


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What ``chat.postMessage`` / ``chat.update`` take: blocks plus the plain ``text``
    Slack shows in notifications and reads to screen readers."""

    text: str
    blocks: list[Block]


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(text[:CONTEXT_LIMIT])]}


def _header(incident: IncidentView) -> Block:
    mark = ":white_check_mark: Resolved:" if incident.status == "resolved" else None
    prefix = mark or facts.SEVERITY_EMOJI[incident.severity]
    text = clip(f"{prefix} {incident.title}", HEADER_LIMIT)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _field(name: str, value: str, prefix: str = "") -> Block:
    head = f"*{name}*\n{prefix + ' ' if prefix else ''}"
    return _mrkdwn(head + clip_mrkdwn(value, FIELD_LIMIT - len(head)))


def _summary(incident: IncidentView) -> Block:
    fields = [
        _field("Severity", incident.severity.value, facts.SEVERITY_EMOJI[incident.severity]),
        _field("Status", facts.status_line(incident)),
        _field("Services", facts.services_text(incident)),
        _field("Alerts", facts.counts_text(incident)),
        _field("Opened", facts.when(incident.opened_at)),
    ]
    if incident.probable_root:
        fields.append(_field("Probable root", incident.probable_root))
    return {"type": "section", "fields": fields}


def _noise(incident: IncidentView) -> Block:
    heading = f"*Noise score:* {incident.noise_score}/100"
    reasons = [f"• {clip_mrkdwn(r, _TITLE_CHARS)}" for r in incident.noise_reasons]
    return _section(fit_lines(heading, reasons, SECTION_LIMIT))


def _deploy_line(deploy: DeployView) -> str:
    what = link(deploy.url, f"{deploy.service} {deploy.version}".strip(), _TITLE_CHARS)
    who = f" by {clip_mrkdwn(deploy.author, 100)}" if deploy.author else ""
    env = f" ({clip_mrkdwn(deploy.environment, 100)})" if deploy.environment else ""
    title = f" — {clip_mrkdwn(deploy.title, _TITLE_CHARS)}" if deploy.title else ""
    return f"• {what}{who} at {facts.when(deploy.started_at)}{env}{title}"


def _alert_line(alert: AlertView) -> str:
    emoji = facts.SEVERITY_EMOJI[alert.severity]
    title = link(alert.source_url, alert.title, _TITLE_CHARS)
    repeats = f" x{alert.repeat_count}" if alert.repeat_count > 1 else ""
    where = " · ".join(clip_mrkdwn(part, 100) for part in (alert.service, alert.source) if part)
    since = f"{alert.status} since {facts.when(alert.started_at)}"
    return f"• {emoji} {title}{repeats} — {where} — {since}"


def _buttons(incident: IncidentView) -> Block | None:
    if incident.status == "resolved":
        return None
    elements: list[Block] = []
    for action_id, label, style in BUTTONS:
        if action_id == "ack" and incident.status == "acknowledged":
            continue
        button: Block = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": clip(label, BUTTON_TEXT_LIMIT)},
            "value": incident.id[:BUTTON_VALUE_LIMIT],
        }
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "elements": elements}


def _footer(incident: IncidentView) -> str:
    parts = [link(incident.url, "Open incident"), f"incident `{clip_mrkdwn(incident.id, 100)}`"]
    sources = sorted({a.source for a in incident.top_alerts if a.source})
    if sources:
        parts.append("sources: " + ", ".join(clip_mrkdwn(s, 50) for s in sources))
    return " · ".join(parts)


def render_incident(incident: IncidentView, event: NotificationEvent) -> SlackMessage:
    """The incident's one Slack message, as it should look after ``event``."""
    blocks: list[Block] = [_header(incident), _summary(incident)]
    if incident.flapping:
        blocks.append(_context(":repeat: Flapping: further state changes update quietly."))
    if incident.noise_score or incident.noise_reasons:
        blocks.append(_noise(incident))
    if incident.deploys:
        lines = [_deploy_line(d) for d in incident.deploys[:_MAX_LISTED]]
        blocks.append(_section(fit_lines("*Recent deploys*", lines)))
    if incident.top_alerts:
        lines = [_alert_line(a) for a in incident.top_alerts[:_MAX_LISTED]]
        blocks.append(_section(fit_lines("*Top alerts*", lines)))
    actions = _buttons(incident)
    if actions is not None:
        blocks.append(actions)
    blocks.append(_context(_footer(incident)))
    return SlackMessage(text=render_fallback(incident, event), blocks=blocks)


def render_plain(incident: IncidentView, event: NotificationEvent) -> SlackMessage:
    """The incident's message when Slack refused the full one (``invalid_blocks``, …):
    the one-line fallback in a single section, with the buttons and the link, so the
    incident is still announced and can still be acknowledged from Slack."""
    blocks: list[Block] = [_section(render_fallback(incident, event))]
    actions = _buttons(incident)
    if actions is not None:
        blocks.append(actions)
    blocks.append(_context(link(incident.url, "Open incident")))
    return SlackMessage(text=render_fallback(incident, event), blocks=blocks)


def render_fallback(incident: IncidentView, event: NotificationEvent) -> str:
    """The plain ``text``: one line a phone notification or a screen reader can use."""
    parts = [
        facts.headline(incident, event),
        facts.status_line(incident),
        facts.services_text(incident),
        facts.counts_text(incident),
    ]
    return clip_mrkdwn(" — ".join(parts), FALLBACK_LIMIT)


def render_thread_reply(incident: IncidentView, event: ThreadEvent, detail: str = "") -> str:
    """A reply in the incident message's thread, so its history reads top to bottom.
    ``detail`` adds the caller's specifics (where it escalated to, what it merged into)."""
    if event == "escalated":
        text = (
            ":rotating_light: *Escalated*: not acknowledged since "
            f"{facts.when(incident.opened_at)}."
        )
    elif event == "merged":
        text = ":twisted_rightwards_arrows: *Merged* with another incident."
    elif event == "resolved":
        text = f":white_check_mark: *{clip_mrkdwn(facts.status_line(incident), 500)}*."
    else:
        text = ":arrows_counterclockwise: *Reopened*: new alerts arrived after it was resolved."
    if detail:
        text += " " + clip_mrkdwn(detail, SECTION_LIMIT - len(text) - 1)
    return text

"""Incident and digest mails (pure): a subject / text / HTML template triple each.

Mails about one incident form one thread in every mail client: the ``opened`` mail
has the stable ``Message-ID`` ``<incident-{id}@{domain}>`` and every later mail points
at it with ``In-Reply-To`` and ``References``. The HTML is autoescaped, and links are
only made from http(s) URLs, since titles and URLs come from alert payloads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import jinja2

from dd0c_alert.domain.urls import web_url

from . import facts
from .model import DigestView, IncidentView, NotificationEvent

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dd0c_alert.notify", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.globals.update(
    when=facts.when,
    safe_url=lambda url: bool(web_url(url)),
)
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SUBJECT_LIMIT = 200
#: The title's share of an incident mail's subject: the rest is the severity and the
#: event, which must survive a long title ("(opened)" and "(resolved)" differ there).
_SUBJECT_TITLE_LIMIT = 160


def _render(name: str, **context: object) -> str:
    return _ENV.get_template(name).render(**context)


def incident_message_id(incident_id: str, domain: str) -> str:
    """The ``Message-ID`` of an incident's first mail, which later mails reply to."""
    return f"<incident-{_ID_UNSAFE.sub('_', incident_id)}@{domain}>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _subject_headline(incident: IncidentView, event: NotificationEvent) -> str:
    """The headline with the title shortened, never the event: with the whole headline
    cut at the limit, every mail of a long-titled incident read the same in the inbox."""
    title = _clip(" ".join(incident.title.split()), _SUBJECT_TITLE_LIMIT)
    return facts.headline(replace(incident, title=title), event)


def _envelope(subject: str, sender: str, to: Sequence[str], at: datetime) -> EmailMessage:
    message = EmailMessage()
    one_line = " ".join(subject.split())
    message["Subject"] = _clip(one_line, _SUBJECT_LIMIT)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(facts.utc(at))
    return message


def render_incident_email(
    incident: IncidentView,
    event: NotificationEvent,
    *,
    sender: str,
    to: Sequence[str],
    domain: str,
    at: datetime,
    event_id: str | None = None,
) -> EmailMessage:
    """The mail for ``event``: the same facts as the Slack message, threaded per
    incident. ``event_id`` makes a later mail's Message-ID stable across retries."""
    context = {
        "incident": incident,
        "headline": facts.headline(incident, event),
        "status": facts.status_line(incident),
        "services": facts.services_text(incident),
        "counts": facts.counts_text(incident),
        "noise": facts.noise_text(incident),
        "colour": facts.SEVERITY_COLOUR[incident.severity],
    }
    subject = _render(
        "incident_subject.txt", **{**context, "headline": _subject_headline(incident, event)}
    )
    message = _envelope(subject, sender, to, at)
    first = incident_message_id(incident.id, domain)
    if event == "opened":
        message["Message-ID"] = first
    else:
        suffix = _ID_UNSAFE.sub("_", event_id) if event_id else None
        message["Message-ID"] = (
            f"<incident-{_ID_UNSAFE.sub('_', incident.id)}.{suffix}@{domain}>"
            if suffix
            else make_msgid(f"incident-{_ID_UNSAFE.sub('_', incident.id)}", domain)
        )
        message["In-Reply-To"] = first
        message["References"] = first
    message.set_content(_render("incident.txt", **context))
    message.add_alternative(_render("incident.html", **context), subtype="html")
    return message


def render_digest_email(
    digest: DigestView, *, sender: str, to: Sequence[str], domain: str, at: datetime
) -> EmailMessage:
    """One tenant's daily digest: incidents, pages against alerts, the noisiest
    alerts and the suggestions waiting for review."""
    message = _envelope(_render("digest_subject.txt", digest=digest), sender, to, at)
    message["Message-ID"] = make_msgid("digest", domain)
    message.set_content(_render("digest.txt", digest=digest))
    message.add_alternative(_render("digest.html", digest=digest), subtype="html")
    return message

"""Who hears about an incident (pure): an ordered route list, like Alertmanager's
route tree made flat.

Routes are tried in order; the first that matches stops the search unless it says
``continue``. A route matches when all its matchers match the incident's labels and
the incident is at least its ``min_severity``. During a route's quiet hours (UTC, or
the zone their ``TZ=`` clause names) its non-critical pages are held back; critical
ones are always delivered. With no matching route the default Slack channel gets the
incident, so configuring nothing still pages somebody. A destination reached by
several routes is notified once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from dd0c_alert.correlation.model import Matcher
from dd0c_alert.correlation.rules import (
    ScheduleWindow,
    in_schedule,
    matches_labels,
    parse_matchers,
    parse_schedule,
)
from dd0c_alert.domain.models import Severity

MAX_DESTINATIONS = 20
MAX_RECIPIENTS = 50
_EMAIL = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+")
_ORDER = list(Severity)


@dataclass(frozen=True, slots=True)
class SlackDestination:
    channel: str


@dataclass(frozen=True, slots=True)
class EmailDestination:
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookDestination:
    url: str
    secret: str = field(repr=False)


Destination = SlackDestination | EmailDestination | WebhookDestination


@dataclass(frozen=True, slots=True)
class QuietHours:
    """``schedule`` as written (``"TZ=Europe/Berlin; mon-fri 22:00-07:00"``; UTC without
    a ``TZ=`` clause)."""

    schedule: str
    windows: tuple[ScheduleWindow, ...]

    @classmethod
    def parse(cls, schedule: str) -> QuietHours:
        return cls(schedule, parse_schedule(schedule))


@dataclass(frozen=True, slots=True)
class Escalation:
    """Still unacknowledged ``after_seconds`` after opening: announce to these too."""

    after_seconds: int
    destinations: tuple[Destination, ...]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    matchers: tuple[Matcher, ...] = ()
    min_severity: Severity | None = None
    continue_: bool = False
    quiet_hours: QuietHours | None = None
    destinations: tuple[Destination, ...] = ()
    escalation: Escalation | None = None


def every_destination(candidate: Route) -> list[Destination]:
    """A route's destinations and its escalation's."""
    every = list(candidate.destinations)
    if candidate.escalation is not None:
        every += candidate.escalation.destinations
    return every


def destination_key(destination: Destination) -> tuple[str, str]:
    """A destination as deliveries name it (a webhook's secret is not part of it)."""
    if isinstance(destination, SlackDestination):
        return ("slack", destination.channel)
    if isinstance(destination, EmailDestination):
        return ("email", ",".join(destination.to))
    return ("webhook", destination.url)


def at_least(severity: Severity, minimum: Severity) -> bool:
    """``severity`` is ``minimum`` or worse (critical is the worst)."""
    return _ORDER.index(severity) <= _ORDER.index(minimum)


def taking(
    routes: Sequence[Route], labels: Mapping[str, str], severity: Severity, now: datetime
) -> Iterator[tuple[Route, bool]]:
    """The routes that take an incident, in order, each with whether it is told now
    (not held back by quiet hours; critical always is), destinations or none: a
    route may have only an escalation, and escalation asks which routes took the
    incident, not which destinations they chose. ``labels`` include ``severity``."""
    for candidate in routes:
        if not matches_labels(candidate.matchers, labels):
            continue
        if candidate.min_severity is not None and not at_least(severity, candidate.min_severity):
            continue
        quiet = candidate.quiet_hours is not None and in_schedule(
            candidate.quiet_hours.windows, now
        )
        yield candidate, not quiet or severity is Severity.CRITICAL
        if not candidate.continue_:
            return


def route(
    routes: Sequence[Route],
    incident_labels: Mapping[str, str],
    severity: Severity,
    now: datetime,
    default_slack_channel: str | None,
) -> list[tuple[Route | None, Destination]]:
    """The destinations to notify now, each with the route that chose it (``None``
    for the default channel). ``incident_labels`` are what matchers see; the incident's
    ``severity`` is added as a label when missing."""
    labels = {"severity": severity.value, **incident_labels}
    chosen: list[tuple[Route | None, Destination]] = []
    seen: set[Destination] = set()
    matched = False
    for candidate, told in taking(routes, labels, severity, now):
        matched = True
        for destination in candidate.destinations if told else ():
            if destination not in seen:
                seen.add(destination)
                chosen.append((candidate, destination))
    if not matched and default_slack_channel:
        chosen.append((None, SlackDestination(default_slack_channel)))
    return chosen


# --------------------------------------------------------------------------- API shape


def _text(data: Mapping[str, Any], key: str, where: str, *, limit: int = 200) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key!r} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{where}: {key!r} is longer than {limit} characters")
    return value.strip()


def _destination(data: Any, where: str) -> Destination:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a destination must be an object with a 'type'")
    kind = data.get("type")
    if kind == "slack":
        return SlackDestination(_text(data, "channel", where, limit=80))
    if kind == "email":
        to = data.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to:
            raise ValueError(f"{where}: 'to' must be a non-empty list of addresses")
        if len(to) > MAX_RECIPIENTS:
            raise ValueError(f"{where}: at most {MAX_RECIPIENTS} recipients")
        bad = [a for a in to if not isinstance(a, str) or not _EMAIL.fullmatch(a.strip())]
        if bad:
            raise ValueError(f"{where}: not an email address: {bad[0]!r}")
        return EmailDestination(tuple(a.strip() for a in to))
    if kind == "webhook":
        url = _text(data, "url", where, limit=2000)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: 'url' must be an http(s) URL")
        return WebhookDestination(url, _text(data, "secret", where, limit=500))
    raise ValueError(f"{where}: unknown destination type {kind!r} (slack, email or webhook)")


def _destinations(value: Any, where: str) -> tuple[Destination, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: 'destinations' must be a list")
    if len(value) > MAX_DESTINATIONS:
        raise ValueError(f"{where}: at most {MAX_DESTINATIONS} destinations")
    return tuple(
        _destination(item, f"{where}, destination {n + 1}") for n, item in enumerate(value)
    )


def _severity(value: Any, where: str) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity(value)
    except ValueError:
        names = ", ".join(s.value for s in Severity)
        raise ValueError(f"{where}: 'min_severity' must be one of {names}") from None


def _escalation(value: Any, where: str) -> Escalation | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: 'escalation' must be an object")
    after = value.get("after_seconds")
    if isinstance(after, bool) or not isinstance(after, int) or after <= 0:
        raise ValueError(f"{where}: escalation 'after_seconds' must be a positive integer")
    return Escalation(after, _destinations(value.get("destinations"), f"{where}, escalation"))


def parse_route(data: Any) -> Route:
    """A route from its API JSON shape; ``ValueError`` saying what is wrong."""
    if not isinstance(data, Mapping):
        raise ValueError("a route must be a JSON object")
    name = _text(data, "name", "route")
    where = f"route {name!r}"
    try:
        matchers = parse_matchers(str(data.get("matchers") or ""))
    except ValueError as error:
        raise ValueError(f"{where}: matchers: {error}") from None
    quiet_text = data.get("quiet_hours")
    if quiet_text is not None and not isinstance(quiet_text, str):
        raise ValueError(f"{where}: 'quiet_hours' must be text, such as \"mon-fri 22:00-07:00\"")
    try:
        quiet = QuietHours.parse(quiet_text) if quiet_text else None
    except ValueError as error:
        raise ValueError(f"{where}: quiet_hours: {error}") from None
    keep_going = data.get("continue", False)
    if not isinstance(keep_going, bool):
        raise ValueError(f"{where}: 'continue' must be true or false")
    return Route(
        name=name,
        matchers=matchers,
        min_severity=_severity(data.get("min_severity"), where),
        continue_=keep_going,
        quiet_hours=quiet,
        destinations=_destinations(data.get("destinations", []), where),
        escalation=_escalation(data.get("escalation"), where),
    )

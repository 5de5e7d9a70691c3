"""Planning: where an incident's event goes and what each destination gets for it.

Pure decisions over the tenant's routes, the incident's detail and where it was
announced before; the notifier (``notifier.py``) reads those, and stores and sends
what these functions plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from dd0c_alert.domain.models import Severity
from dd0c_alert.notify.routing import (
    Destination,
    EmailDestination,
    Route,
    SlackDestination,
    WebhookDestination,
    destination_key,
    every_destination,
    route,
    taking,
)
from dd0c_alert.storage.outbox import (
    ANNOUNCING,
    EVENT,
    MAIL,
    MESSAGE,
    RELEASED,
    REPLY,
    STATE,
    Planned,
    Sent,
)

from .incident_view import routing_labels

#: Events that get a reply in the incident's Slack thread besides the message update.
THREAD_EVENTS = frozenset({"escalated", "merged", "resolved", "reopened"})
#: Events worth a mail (an update or an acknowledgement is not).
MAIL_EVENTS = frozenset({"opened", "escalated", "resolved"})
#: Events that may be an incident's first page, the one quiet hours hold back.
FIRST_PAGES = frozenset({"opened", "reopened"})


def matching(routes: list[Route], detail: dict[str, Any], now: datetime) -> list[Route]:
    """Routes (with escalation) the incident matches, by any of its alerts' labels."""
    found: list[Route] = []
    for candidate, told in _takers(routes, detail, now):
        if told and candidate not in found:
            found.append(candidate)
    return found


def _takers(
    routes: list[Route], detail: dict[str, Any], now: datetime
) -> Iterator[tuple[Route, bool]]:
    """The routes that take the incident by any of its alerts' labels, each with
    whether it is told now (``taking``)."""
    severity = Severity(detail["severity"])
    for labels in routing_labels(detail):
        yield from taking(routes, {"severity": severity.value, **labels}, severity, now)


def snoozed(incident: dict[str, Any], now: datetime) -> bool:
    """Snoozed at ``now``: a snooze is not cleared when it runs out, so ``snoozed_until``
    (ISO 8601, as the store gives it) is compared, not merely present."""
    until = incident.get("snoozed_until")
    if not until:
        return False
    return datetime.fromisoformat(str(until).replace("Z", "+00:00")) > now


def held_back(
    event: str, made: list[Planned], detail: dict[str, Any], routes: list[Route], now: datetime
) -> bool:
    """Quiet hours held this first page (``opened``, or ``reopened``) back from
    somebody (``quiet_for`` what it was planned to): the whole page, or only a quiet
    route's part while other routes were told, whose team would otherwise never hear
    of the incident unless it changed. A destination the incident was announced at
    gets every event, quiet or not, so it is never held. Critical incidents are never
    held."""
    if event not in FIRST_PAGES or detail.get("merged_into"):
        return False
    return quiet_for(detail, routes, now, {sent_key(item) for item in made})


def quiet_for(
    detail: dict[str, Any], routes: list[Route], now: datetime, told: set[tuple[str, str]]
) -> bool:
    """A route that takes the incident is in its quiet hours, and one of its
    destinations is not among ``told``."""
    return any(
        not told_now and {destination_key(d) for d in candidate.destinations} - told
        for candidate, told_now in _takers(routes, detail, now)
    )


def not_yet_told(
    reached: list[tuple[str | None, Destination]], sent: list[Sent]
) -> list[tuple[str | None, Destination]]:
    """The destinations of ``reached`` the incident was never announced at."""
    announced = {sent_key(item) for item in sent}
    return [(name, d) for name, d in reached if destination_key(d) not in announced]


def page_still_wanted(detail: dict[str, Any]) -> bool:
    """A held page is still worth sending: its incident is open, paged, not merged
    away, and nobody acknowledged it (somebody is on it, so it needs no page)."""
    return (
        detail["status"] == "open"
        and detail.get("acknowledged_at") is None
        and bool(detail.get("paged"))
        and not detail.get("merged_into")
    )


def remember(sent: list[Sent], made: list[Planned]) -> None:
    """Add the destinations just planned to where the incident was announced, so a
    later intent of the same pass follows them too."""
    for item in made:
        if item.kind in ANNOUNCING and sent_key(item) not in {sent_key(x) for x in sent}:
            sent.append(Sent(item.destination_type, item.destination, item.route))


def sent_key(item: Sent | Planned) -> tuple[str, str]:
    return (item.destination_type, item.destination)


def announced_at(sent: list[Sent], routes: list[Route]) -> list[tuple[str | None, Destination]]:
    """The destinations an incident was announced at, as destinations again. A webhook
    no route names any more is left out: its secret went with the route."""
    hooks = {
        d.url: d for r in routes for d in every_destination(r) if isinstance(d, WebhookDestination)
    }
    found: list[tuple[str | None, Destination]] = []
    for item in sent:
        if item.destination_type == "slack":
            found.append((item.route, SlackDestination(item.destination)))
        elif item.destination_type == "email":
            found.append((item.route, EmailDestination(tuple(item.destination.split(",")))))
        elif item.destination in hooks:
            found.append((item.route, hooks[item.destination]))
    return found


def reach(
    detail: dict[str, Any],
    routes: list[Route],
    default_channel: str | None,
    now: datetime,
    sent: list[Sent],
) -> list[tuple[str | None, Destination]]:
    """Where an event of this incident goes, with the name of the route that chose each
    destination. Once announced, it goes where it was announced, plus routes its labels
    match now (it grew into a service another team watches); never the default channel
    again, which only stands in for "no route matched" on a first page. An incident
    merged away has no labels left: only where it was announced, if anywhere."""
    severity = Severity(detail["severity"])
    routed: list[tuple[str | None, Destination]] = []
    for labels in routing_labels(detail):
        for chosen, destination in route(routes, labels, severity, now, default_channel):
            routed.append((chosen.name if chosen else None, destination))
    if detail.get("merged_into"):
        routed = []
    elif sent:
        routed = [(name, d) for name, d in routed if name is not None]
    reached: list[tuple[str | None, Destination]] = []
    for name, destination in announced_at(sent, routes) + routed:
        if destination_key(destination) not in {destination_key(d) for _, d in reached}:
            reached.append((name, destination))
    return reached


def plan_one(
    incident_id: str,
    event: str,
    intent_detail: dict[str, Any],
    detail: dict[str, Any],
    routes: list[Route],
    default_channel: str | None,
    now: datetime,
    sent: list[Sent] | None = None,
) -> list[Planned]:
    """The deliveries one intent makes: where the incident goes (``reach``), what
    each kind of destination gets for this event. Each delivery telling one event
    keeps the incident's state of that moment (``STATE``) from the intent."""
    reached = reach(detail, routes, default_channel, now, sent or [])
    if intent_detail.get(RELEASED):  # a held page: only to those it was held from
        reached = not_yet_told(reached, sent or [])
    state = {STATE: intent_detail[STATE]} if STATE in intent_detail else {}
    planned: list[Planned] = []
    if event == "escalated":
        wanted = intent_detail.get("route")  # by name: one with an escalation, should
        # two routes stored before names were unique share it
        named = next((r for r in routes if r.name == wanted and r.escalation is not None), None)
        if named is None or named.escalation is None:
            return []
        waited = {
            "note": f"still unacknowledged after {named.escalation.after_seconds // 60} min",
            **state,
        }
        for _, destination in reached:  # a reply in the first message's thread
            if isinstance(destination, SlackDestination):
                channel = destination.channel
                planned.append(
                    Planned(incident_id, "slack", channel, REPLY, event, named.name, waited)
                )
        reached = [(named.name, d) for d in named.escalation.destinations]
    for name, destination in reached:
        if isinstance(destination, SlackDestination):
            planned.append(Planned(incident_id, "slack", destination.channel, MESSAGE, event, name))
            if event in THREAD_EVENTS and event != "escalated":
                into = intent_detail.get("into")
                merged = {"note": f"merged into incident {into}"} if into else {}
                planned.append(
                    Planned(
                        incident_id,
                        "slack",
                        destination.channel,
                        REPLY,
                        event,
                        name,
                        {**merged, **state},
                    )
                )
        elif isinstance(destination, EmailDestination):
            if event in MAIL_EVENTS:
                to = ",".join(destination.to)
                planned.append(Planned(incident_id, "email", to, MAIL, event, name, state))
        else:
            planned.append(
                Planned(incident_id, "webhook", destination.url, EVENT, event, name, state)
            )
    return planned

"""Routing: order, continue, minimum severity, quiet hours with an explicit clock, the
default channel, dedup, and the API JSON parser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dd0c_alert.correlation.rules import parse_matchers
from dd0c_alert.domain.models import Severity
from dd0c_alert.notify.routing import (
    EmailDestination,
    QuietHours,
    Route,
    SlackDestination,
    WebhookDestination,
    parse_route,
    route,
)

WEEKDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
WEEKDAY_NIGHT = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
ONCALL, PAYMENTS, SRE = (
    SlackDestination("#oncall"),
    SlackDestination("#payments"),
    SlackDestination("#sre"),
)
MAIL = EmailDestination(("lead@example.com",))


def _route(name: str, matchers: str = "", *destinations: Any, **kw: Any) -> Route:
    return Route(name, parse_matchers(matchers), destinations=destinations, **kw)


ROUTES = [
    _route("payments", '{service="checkout"}', PAYMENTS, continue_=True),
    _route("critical", '{severity="critical"}', ONCALL, MAIL),
    _route("db", '{service=~"db|cache"}', SRE, ONCALL),
    _route("catch-all", "", ONCALL, min_severity=Severity.HIGH),
]


def _names(chosen: list[tuple[Route | None, Any]]) -> list[tuple[str | None, Any]]:
    return [(r.name if r else None, d) for r, d in chosen]


@pytest.mark.parametrize(
    ("labels", "severity", "expected"),
    [
        # continue: payments, then the critical route stops the search
        (
            {"service": "checkout"},
            Severity.CRITICAL,
            [("payments", PAYMENTS), ("critical", ONCALL), ("critical", MAIL)],
        ),
        # payments continues, critical does not match, db does not, catch-all matches
        ({"service": "checkout"}, Severity.HIGH, [("payments", PAYMENTS), ("catch-all", ONCALL)]),
        # first match stops: db matches, the catch-all is not reached
        ({"service": "db"}, Severity.MEDIUM, [("db", SRE), ("db", ONCALL)]),
        # min severity filters the catch-all: nothing matched, so the default channel
        ({"service": "web"}, Severity.LOW, [(None, SlackDestination("#default"))]),
        ({"service": "web"}, Severity.HIGH, [("catch-all", ONCALL)]),
    ],
)
def test_order_continue_min_severity_default(
    labels: dict[str, str], severity: Severity, expected: list[Any]
) -> None:
    assert _names(route(ROUTES, labels, severity, WEEKDAY_NOON, "#default")) == expected


def test_destinations_reached_twice_are_notified_once() -> None:
    routes = [_route("a", "", ONCALL, MAIL, continue_=True), _route("b", "", MAIL, ONCALL, SRE)]
    assert _names(route(routes, {}, Severity.HIGH, WEEKDAY_NOON, None)) == [
        ("a", ONCALL),
        ("a", MAIL),
        ("b", SRE),
    ]


def test_no_route_and_no_default_channel_is_empty() -> None:
    assert route([], {"service": "x"}, Severity.CRITICAL, WEEKDAY_NOON, None) == []
    assert _names(route([], {}, Severity.INFO, WEEKDAY_NOON, "#d")) == [
        (None, SlackDestination("#d"))
    ]


def test_quiet_hours_hold_non_critical_but_never_critical() -> None:
    quiet = QuietHours.parse("mon-fri 22:00-07:00")
    routes = [_route("team", '{service="web"}', ONCALL, quiet_hours=quiet)]
    labels = {"service": "web"}
    assert route(routes, labels, Severity.HIGH, WEEKDAY_NIGHT, "#default") == []
    assert _names(route(routes, labels, Severity.HIGH, WEEKDAY_NOON, None)) == [("team", ONCALL)]
    assert _names(route(routes, labels, Severity.CRITICAL, WEEKDAY_NIGHT, None)) == [
        ("team", ONCALL)
    ]
    early_thursday = datetime(2026, 11, 26, 6, 59, tzinfo=UTC)
    assert route(routes, labels, Severity.MEDIUM, early_thursday, None) == []


def test_quiet_hours_in_a_time_zone_follow_the_teams_clock() -> None:
    """A team in New York sleeps 22:00-07:00 Eastern: 03:00-12:00 UTC in winter."""
    quiet = QuietHours.parse("TZ=America/New_York; mon-fri 22:00-07:00")
    routes = [_route("team", '{service="web"}', ONCALL, quiet_hours=quiet)]
    labels = {"service": "web"}
    thursday = datetime(2026, 11, 26, tzinfo=UTC)
    for hour, told in ((2, True), (3, False), (11, False), (12, True)):
        found = route(routes, labels, Severity.HIGH, thursday.replace(hour=hour), None)
        assert bool(found) is told, hour


def test_severity_label_is_matchable() -> None:
    routes = [_route("sev", '{severity=~"critical|high"}', ONCALL)]
    assert route(routes, {}, Severity.HIGH, WEEKDAY_NOON, None) == [(routes[0], ONCALL)]
    assert route(routes, {}, Severity.LOW, WEEKDAY_NOON, None) == []


FULL = {
    "name": "checkout",
    "matchers": '{service="checkout"}',
    "min_severity": "high",
    "continue": True,
    "quiet_hours": "sat,sun 00:00-24:00",
    "destinations": [
        {"type": "slack", "channel": "#oncall"},
        {"type": "email", "to": ["a@example.com"]},
        {"type": "webhook", "url": "https://hooks.example.com/x", "secret": "whsec_abc"},
    ],
    "escalation": {"after_seconds": 900, "destinations": [{"type": "slack", "channel": "#sre"}]},
}


def test_parse_route_from_api_json() -> None:
    parsed = parse_route(FULL)
    assert parsed.name == "checkout" and parsed.continue_ is True
    assert parsed.min_severity is Severity.HIGH
    assert parsed.matchers == parse_matchers('{service="checkout"}')
    assert parsed.quiet_hours is not None and parsed.quiet_hours.schedule == "sat,sun 00:00-24:00"
    assert parsed.destinations == (
        ONCALL,
        EmailDestination(("a@example.com",)),
        WebhookDestination("https://hooks.example.com/x", "whsec_abc"),
    )
    assert parsed.escalation is not None and parsed.escalation.after_seconds == 900
    assert parsed.escalation.destinations == (SRE,)
    assert "whsec_abc" not in repr(parsed)
    minimal = parse_route({"name": "all", "destinations": [{"type": "slack", "channel": "#x"}]})
    assert (minimal.matchers, minimal.min_severity, minimal.quiet_hours) == ((), None, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"matchers": '{service="x"'}, "matchers:"),
        ({"min_severity": "urgent"}, "'min_severity' must be one of"),
        ({"continue": "yes"}, "'continue' must be true or false"),
        ({"quiet_hours": "someday 1-2"}, "quiet_hours:"),
        ({"destinations": [{"type": "pager"}]}, "unknown destination type 'pager'"),
        ({"destinations": [{"type": "slack"}]}, "'channel' must be a non-empty string"),
        ({"destinations": [{"type": "slack", "channel": "#x"}] * 21}, "at most 20 destinations"),
        ({"destinations": [{"type": "email", "to": []}]}, "non-empty list"),
        ({"destinations": [{"type": "email", "to": ["nope"]}]}, "not an email address: 'nope'"),
        (
            {"destinations": [{"type": "email", "to": [f"u{i}@e.com" for i in range(51)]}]},
            "at most 50 recipients",
        ),
        ({"destinations": [{"type": "webhook", "url": "ftp://x", "secret": "s"}]}, "http(s) URL"),
        ({"destinations": [{"type": "webhook", "url": "https://x.com"}]}, "'secret'"),
        ({"escalation": {"after_seconds": 0, "destinations": []}}, "positive integer"),
        (
            {"escalation": {"after_seconds": 60, "destinations": [{"type": "x"}]}},
            "escalation, destination 1",
        ),
    ],
)
def test_parse_route_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_route({**FULL, **change})
    assert message in str(caught.value)


def test_parse_route_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse_route(["x"])

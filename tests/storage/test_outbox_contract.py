"""The notification outbox on SQLite and PostgreSQL (under row-level security):
planning deletes intents exactly once, a living message coalesces, leases hide due
deliveries, attempts and health are recorded, secrets are stored encrypted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from dd0c_alert.storage import schema as t
from dd0c_alert.storage.engine import make_engines
from dd0c_alert.storage.migrate import upgrade
from dd0c_alert.storage.notify_settings import SqlNotifySettings
from dd0c_alert.storage.outbox import EVENT, MESSAGE, Planned, SqlOutbox, write_intents
from dd0c_alert.storage.secrets import SecretBox
from dd0c_alert.storage.tenancy import scoped
from servers import APP, PostgresServer

T = "01TENANT000000000000000000"
OTHER = "01OTHER0000000000000000000"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
BOX = SecretBox(Fernet.generate_key())


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlOutbox, sa.Engine]]:
    if request.param == "sqlite":
        engine, _ = make_engines(f"sqlite:///{tmp_path / 'o.db'}")
        upgrade(engine)
    else:
        server: PostgresServer = request.getfixturevalue("pg_server")
        database = request.getfixturevalue("pg_database")
        engine, _ = make_engines(server.url(database, APP))
    yield SqlOutbox(engine, BOX), engine
    engine.dispose()


def intents(engine: sa.Engine, tenant_id: str, *rows: tuple[str, str]) -> None:
    with scoped(engine, tenant_id) as conn:
        write_intents(conn, tenant_id, [(incident, event, {}) for incident, event in rows])


def test_planning_takes_each_intent_once_and_coalesces_the_living_message(
    outbox: tuple[SqlOutbox, sa.Engine],
) -> None:
    box, engine = outbox
    intents(engine, T, ("inc1", "opened"), ("inc1", "updated"))
    intents(engine, OTHER, ("inc9", "opened"))
    assert sorted(box.tenants_with_work(NOW)) == sorted([T, OTHER])
    taken = box.intents(T, 10)
    assert [i.event for i in taken] == ["opened", "updated"]
    plan = [Planned("inc1", "slack", "#oncall", MESSAGE, i.event) for i in taken]
    assert box.plan(T, taken, plan, NOW)
    assert not box.plan(T, taken, plan, NOW)  # another notifier got there first
    assert box.intents(T, 10) == []
    [message] = box.lease_due(T, NOW, 10, timedelta(seconds=30))
    assert (message.version_wanted, message.version_sent) == (2, 0)
    assert box.lease_due(T, NOW, 10, timedelta(seconds=30)) == []  # leased
    box.finish(
        message, ok=True, latency_ms=12.0, error=None, at=NOW, message_ref="C1:1.0", version_sent=2
    )
    assert box.lease_due(T, NOW + timedelta(minutes=1), 10, timedelta(seconds=30)) == []
    intents(engine, T, ("inc1", "resolved"))
    box.plan(T, box.intents(T, 10), [Planned("inc1", "slack", "#oncall", MESSAGE, "resolved")], NOW)
    [again] = box.lease_due(T, NOW, 10, timedelta(seconds=30))
    assert again.id == message.id and again.message_ref == "C1:1.0"
    assert (again.version_wanted, again.version_sent) == (3, 2)
    [shown] = box.incident_deliveries(T, "inc1")
    assert shown["tries"][0]["ok"] and shown["status"] == "pending"
    assert box.incident_deliveries(OTHER, "inc1") == []


def test_failures_retry_then_fail_and_replay_unstops_the_destination(
    outbox: tuple[SqlOutbox, sa.Engine],
) -> None:
    box, engine = outbox
    intents(engine, T, ("inc1", "opened"))
    box.plan(
        T, box.intents(T, 10), [Planned("inc1", "email", "a@example.com", "mail", "opened")], NOW
    )
    [mail] = box.lease_due(T, NOW, 10, timedelta(seconds=30))
    box.finish(
        mail,
        ok=False,
        latency_ms=5,
        error="451 try later",
        at=NOW,
        retry_at=NOW + timedelta(seconds=5),
    )
    assert box.lease_due(T, NOW, 10, timedelta(seconds=30)) == []
    [mail] = box.lease_due(T, NOW + timedelta(seconds=6), 10, timedelta(seconds=30))
    box.finish(mail, ok=False, latency_ms=5, error="550 no such user", at=NOW)
    box.set_health(T, "email", "a@example.com", "stopped", "550 no such user")
    assert box.stopped(T) == {("email", "a@example.com")}
    page = box.list_deliveries(T, 10, None, status="failed")
    assert [d["last_error"] for d in page.items] == ["550 no such user"]
    assert box.replay(T, mail.id)["status"] == "pending"
    assert box.stopped(T) == set()
    assert box.replay(OTHER, mail.id) is None


def test_route_webhook_secrets_and_slack_secrets_are_stored_encrypted(
    outbox: tuple[SqlOutbox, sa.Engine],
) -> None:
    box, engine = outbox
    settings = SqlNotifySettings(engine, BOX)
    route = {
        "name": "hooks",
        "destinations": [
            {"type": "webhook", "url": "https://h.example/x", "secret": "whsec-s3cr3t"}
        ],
        "escalation": {
            "after_seconds": 60,
            "destinations": [{"type": "webhook", "url": "https://e", "secret": "esc-s3cr3t"}],
        },
    }
    saved = settings.save_route(T, route)
    assert saved is not None and "secret" not in saved["destinations"][0]
    settings.put_slack(
        T,
        bot_token="xoxb-t0ken",
        signing_secret="sign-s3cr3t",
        default_channel="#oncall",
        team_id="T1",
    )
    with scoped(engine, T) as conn:
        stored = " ".join(
            str(row)
            for table in (t.routes, t.slack_settings)
            for row in conn.execute(sa.select(table)).all()
        )
    for secret in ("whsec-s3cr3t", "esc-s3cr3t", "xoxb-t0ken", "sign-s3cr3t"):
        assert secret not in stored
    # the notifier reads them, decrypted, through its outbox
    [revealed] = box.routes_for_sending(T)
    assert revealed["destinations"][0]["secret"] == "whsec-s3cr3t"
    assert revealed["escalation"]["destinations"][0]["secret"] == "esc-s3cr3t"
    slack = box.slack(T)
    assert slack is not None and slack.bot_token == "xoxb-t0ken"
    assert "xoxb" not in repr(slack)
    assert settings.tenants_for_slack_team("T1") == [T]
    assert settings.slack(OTHER) is None and settings.list_routes(OTHER) == []


def test_one_incidents_events_are_due_one_at_a_time_in_the_order_they_happened(
    outbox: tuple[SqlOutbox, sa.Engine],
) -> None:
    """Planned in one pass (one ``now``, ids of one millisecond sorting at random),
    events leave by their own time, each only once the one before it is done; another
    incident's events, and another destination's, do not wait for them."""
    box, _ = outbox
    hook = "https://h.example/x"
    told = [
        Planned("inc1", "webhook", hook, EVENT, f"e{n}", at=NOW + timedelta(microseconds=n))
        for n in range(12)
    ]
    others = [
        Planned("inc2", "webhook", hook, EVENT, "other", at=NOW),
        Planned("inc1", "webhook", "https://h.example/y", EVENT, "elsewhere", at=NOW),
    ]
    assert box.plan(T, [], [*reversed(told), *others], NOW)
    sent: list[str] = []
    for _ in range(len(told) + 2):
        due = box.lease_due(T, NOW, 100, timedelta(seconds=30))
        if not sent:
            assert sorted(d.event for d in due) == ["e0", "elsewhere", "other"]
        for delivery in due:
            assert delivery.created_at in {NOW + timedelta(microseconds=n) for n in range(12)}
            if delivery.event.startswith("e") and delivery.event != "elsewhere":
                sent.append(delivery.event)
            box.finish(delivery, ok=True, latency_ms=1.0, error=None, at=NOW)
    assert sent == [f"e{n}" for n in range(12)]


def test_a_retried_event_holds_back_the_later_ones_and_a_failed_one_does_not(
    outbox: tuple[SqlOutbox, sa.Engine],
) -> None:
    box, _ = outbox
    hook = "https://h.example/x"
    box.plan(
        T,
        [],
        [
            Planned("inc1", "webhook", hook, EVENT, "resolved", at=NOW),
            Planned("inc1", "webhook", hook, EVENT, "reopened", at=NOW + timedelta(seconds=1)),
        ],
        NOW,
    )
    lease = timedelta(seconds=30)
    [first] = box.lease_due(T, NOW, 10, lease)
    later = NOW + timedelta(seconds=5)
    box.finish(first, ok=False, latency_ms=1, error="HTTP 500", at=NOW, retry_at=later)
    assert box.lease_due(T, NOW + timedelta(seconds=2), 10, lease) == []  # it waits
    [again] = box.lease_due(T, later, 10, lease)
    assert again.id == first.id
    box.finish(again, ok=False, latency_ms=1, error="HTTP 500", at=later)  # failed for good
    [second] = box.lease_due(T, later, 10, lease)
    assert second.event == "reopened"

"""The Store contract, run unchanged on SQLite and on PostgreSQL (as the application
role, under row-level security): what one backend answers, the other answers too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from dd0c_alert.app import open_store
from dd0c_alert.config import Settings
from dd0c_alert.correlation.dedup import AlertRecord
from dd0c_alert.correlation.model import InhibitRule, Silence
from dd0c_alert.correlation.rules import parse_matchers
from dd0c_alert.correlation.suggestions import Suggestion
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import (
    AlertStatus,
    CanonicalAlert,
    DeployEvent,
    DeployStatus,
    Severity,
)
from dd0c_alert.pipeline.persist import persist
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.ports import (
    AlertFilter,
    BatchOutcome,
    DeadLetter,
    IncidentFilter,
    InvalidTransition,
    RawEvent,
)
from dd0c_alert.storage.sql import SqlStore
from dd0c_alert.storage.tenancy import scope
from servers import APP, PostgresServer

T0 = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Backend:
    store: SqlStore
    #: The same database, as the store's connecting role, for writes the Store API
    #: leaves to other adapters (idempotency keys and usage come from the queue).
    engine: sa.Engine


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    settings = Settings(data_dir=tmp_path / "data", secret_key=Fernet.generate_key().decode())
    if request.param == "sqlite":
        store = open_store(settings)
        url = settings.resolved_database_url
    else:
        server: PostgresServer = request.getfixturevalue("pg_server")
        database: str = request.getfixturevalue("pg_database")
        url = server.url(database, APP)
        store = open_store(settings.model_copy(update={"database_url": url}), migrate_schema=False)
    engine = sa.create_engine(url)
    yield Backend(store, engine)
    engine.dispose()


def alert(
    tenant: str,
    *,
    fingerprint: str = "am:cpu",
    service: str = "api",
    status: AlertStatus = AlertStatus.FIRING,
    started: datetime = T0,
    ended: datetime | None = None,
) -> CanonicalAlert:
    return CanonicalAlert(
        id=new_id(),
        event_id=new_id(),
        tenant_id=tenant,
        source="alertmanager",
        source_ref=fingerprint,
        fingerprint=fingerprint,
        status=status,
        severity=Severity.HIGH,
        title=f"{service} is unwell",
        description="déjà vu ✓",
        service=service,
        environment="prod",
        labels={"alertname": "CPU", "pod": "api-7f9c", "ünïcode": "日本語"},
        links={"runbook": "https://runbooks.example/cpu"},
        started_at=started,
        received_at=started + timedelta(seconds=2),
        ended_at=ended,
    )


def deploy(tenant: str, status: DeployStatus, *, version: str = "") -> DeployEvent:
    return DeployEvent(
        id=new_id(),
        event_id=new_id(),
        tenant_id=tenant,
        source="github",
        source_ref="run-42",
        service="api",
        status=status,
        started_at=T0 - timedelta(minutes=5),
        received_at=T0,
        version=version,
        author="ana",
        title="Bump the pool size",
    )


def raw_event(tenant: str) -> RawEvent:
    return RawEvent(
        event_id=new_id(),
        tenant_id=tenant,
        integration_id=new_id(),
        provider="custom",
        received_at=1_790_000_000.25,
        headers={"content-type": "application/json", "x-request-id": "r-1"},
        body=b"\x00\xff not json \xfe",
        attempts=5,
    )


def two_tenants(store: SqlStore) -> tuple[str, str]:
    return store.create_tenant("acme").id, store.create_tenant("globex").id


# --------------------------------------------------------------------------- tenants


def test_tenants_and_api_keys(backend: Backend) -> None:
    store = backend.store
    acme = store.create_tenant("acme")
    globex = store.create_tenant("globex")
    assert store.get_tenant(acme.id) == acme
    assert store.get_tenant(new_id()) is None
    assert store.list_tenants() == sorted([acme, globex], key=lambda x: x.id)
    key = store.create_api_key(acme.id, "ci")
    assert store.tenant_for_api_key(key) == acme.id
    assert store.tenant_for_api_key(key + "x") is None
    assert store.tenant_for_api_key(store.create_api_key(globex.id, "ci")) == globex.id


def test_integration_secrets_round_trip_and_stay_with_their_tenant(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    created = store.create_integration(acme, "custom", "ci", "s3cr3t ✓")
    store.create_integration(acme, "grafana", "grafana", "other")
    assert store.integrations_for(acme, "custom") == [created]
    assert store.integrations_for(globex, "custom") == []
    [found] = store.integrations_for(acme, "custom")
    assert found.secret == "s3cr3t ✓" and found.created_at.tzinfo is not None


def test_settings_dependencies_and_rules(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    merged = store.update_settings(acme, {"correlation_window_seconds": 600})
    assert merged.correlation_window_seconds == 600
    store.update_settings(acme, {"never_suppress_services": ["db"]})
    settings, _ = store.tenant_config(acme)
    assert settings.correlation_window_seconds == 600
    assert settings.never_suppress_services == frozenset({"db"})
    assert store.tenant_config(globex)[0].correlation_window_seconds == 300

    store.set_dependencies(acme, {"api": ["db", "cache", "api"]})
    silence = Silence(
        id=new_id(),
        matchers=parse_matchers('{service="db"}'),
        starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
        author="ana",
        comment="maintenance",
    )
    created = store.create_silence(acme, silence)
    assert created["starts_at"] == "2026-11-27T10:00:00.123456Z"
    inhibition = InhibitRule(
        id=new_id(),
        source=parse_matchers('{severity="critical"}'),
        target=parse_matchers('{severity="low"}'),
        equal=("service",),
    )
    assert store.create_inhibition(acme, inhibition)["equal"] == ["service"]
    _, rules = store.tenant_config(acme)
    assert rules.dependencies == {"api": frozenset({"db", "cache"})}
    assert [s.id for s in rules.silences] == [silence.id]
    assert rules.silences[0].starts_at == T0
    assert rules.inhibitions == (inhibition,)
    assert store.list_silences(acme) == [created]
    assert [r["id"] for r in store.list_inhibitions(acme)] == [inhibition.id]
    changed = replace(inhibition, target=parse_matchers('{severity="info"}'), equal=())
    assert store.update_inhibition(globex, changed) is None  # not globex's rule
    updated = store.update_inhibition(acme, changed)
    assert updated is not None and updated["target"] == '{severity="info"}'
    assert store.tenant_config(acme)[1].inhibitions == (changed,)

    _, other = store.tenant_config(globex)
    assert other.silences == () and other.inhibitions == () and other.dependencies == {}
    assert store.list_silences(globex) == []
    assert not store.delete_rule(globex, "silence", silence.id)
    assert store.delete_rule(acme, "silence", silence.id)
    assert store.delete_rule(acme, "inhibition", inhibition.id)
    assert store.list_silences(acme) == [] and store.list_inhibitions(acme) == []


# --------------------------------------------------------------------------- worker path


def test_worker_batch_folds_correlates_and_resolves(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    started = deploy(acme, DeployStatus.IN_PROGRESS)
    persist(store, BatchOutcome(deploys=[started]))
    first = alert(acme)
    sibling = alert(acme, fingerprint="am:mem", started=T0 + timedelta(seconds=30))
    theirs = alert(globex)
    pairs = persist(
        store,
        BatchOutcome(
            alerts=[sibling, theirs, first, alert(acme, started=T0 + timedelta(seconds=10))],
            deploys=[deploy(acme, DeployStatus.SUCCESS, version="v2")],
        ),
    )
    assert len(pairs) == 4

    alerts = store.list_alerts(acme, AlertFilter(), 10, None).items
    assert sorted(a["fingerprint"] for a in alerts) == ["am:cpu", "am:mem"]
    cpu = next(a for a in alerts if a["fingerprint"] == "am:cpu")
    assert cpu["repeat_count"] == 2
    assert cpu["labels"] == first.labels and cpu["links"] == first.links
    assert cpu["description"] == "déjà vu ✓"
    assert cpu["started_at"] == "2026-11-27T10:00:00.123456Z"
    assert cpu["last_seen_at"] == "2026-11-27T10:00:12.123456Z"  # received_at
    assert store.get_alert(acme, cpu["id"]) == cpu
    assert store.get_alert(globex, cpu["id"]) is None

    [deployed] = store.list_deploys(acme, AlertFilter(), 10, None).items
    assert deployed["id"] == started.id
    assert (deployed["status"], deployed["version"]) == ("success", "v2")
    assert store.list_deploys(globex, AlertFilter(), 10, None).items == []

    [incident] = store.list_incidents(acme, IncidentFilter(), 10, None).items
    assert incident["alert_count"] == 2 and incident["status"] == "open"
    assert incident["paged"] is True and incident["flapping"] is False
    assert [d["id"] for d in incident["deploys"]] == [started.id]
    assert incident["opened_at"] == "2026-11-27T10:00:00.123456Z"
    [their_incident] = store.list_incidents(globex, IncidentFilter(), 10, None).items
    assert store.get_incident(globex, incident["id"]) is None

    detail = store.get_incident(acme, incident["id"])
    assert detail is not None
    assert [a["fingerprint"] for a in detail["alerts"]] == ["am:cpu", "am:mem"]
    # The placements of cpu and mem; cpu's plain repeat is its repeat_count, not a row.
    assert [e["outcome"] for e in detail["timeline"]] == ["new_incident", "joined"]
    decision = store.alert_decision(acme, cpu["id"])
    assert decision is not None and decision["incident_id"] == incident["id"]
    assert store.alert_decision(globex, cpu["id"]) is None
    service = IncidentFilter(service="api", status="open")
    assert [i["id"] for i in store.list_incidents(acme, service, 10, None).items] == [
        incident["id"]
    ]

    resolved = alert(acme, status=AlertStatus.RESOLVED, started=T0, ended=T0 + timedelta(minutes=1))
    persist(store, BatchOutcome(alerts=[resolved]))
    [cpu] = store.list_alerts(acme, AlertFilter(fingerprint="am:cpu"), 10, None).items
    assert cpu["status"] == "resolved" and cpu["ended_at"] == "2026-11-27T10:01:00.123456Z"
    [theirs_stored] = store.list_alerts(globex, AlertFilter(), 10, None).items
    assert theirs_stored["status"] == "firing"
    assert their_incident["id"] != incident["id"]


def test_fingerprint_state_is_the_firing_and_the_latest_ended_occurrence(
    backend: Backend,
) -> None:
    """However often a fingerprint fired before, the worker sees the one occurrence
    firing now and the newest that ended (what folding a late resolve needs)."""
    store = backend.store
    acme, globex = two_tenants(store)
    for n in range(4):  # flapping: four occurrences fired and ended
        start = T0 + timedelta(minutes=10 * n)
        persist(store, BatchOutcome(alerts=[alert(acme, started=start)]))
        ended = alert(
            acme, status=AlertStatus.RESOLVED, started=start, ended=start + timedelta(minutes=1)
        )
        persist(store, BatchOutcome(alerts=[ended]))
    firing_now = T0 + timedelta(hours=1)
    persist(store, BatchOutcome(alerts=[alert(acme, started=firing_now)]))
    persist(store, BatchOutcome(alerts=[alert(acme, fingerprint="am:only-ended", started=T0)]))
    persist(
        store,
        BatchOutcome(
            alerts=[
                alert(
                    acme,
                    fingerprint="am:only-ended",
                    status=AlertStatus.RESOLVED,
                    started=T0,
                    ended=T0 + timedelta(minutes=5),
                )
            ]
        ),
    )
    keys = {(acme, "am:cpu"), (acme, "am:only-ended"), (acme, "am:never"), (globex, "am:cpu")}
    with store.transaction([acme, globex]) as tx:
        states = tx.fingerprint_states(keys)
    cpu = states[(acme, "am:cpu")]
    assert cpu.active is not None and cpu.active.alert.started_at == firing_now
    assert cpu.last_ended is not None
    assert cpu.last_ended.alert.started_at == T0 + timedelta(minutes=30)
    only_ended = states[(acme, "am:only-ended")]
    assert only_ended.active is None and only_ended.last_ended is not None
    assert (acme, "am:never") not in states and (globex, "am:cpu") not in states


def _by_name(row: sa.Row[Any]) -> AlertRecord:
    """The record of a typed row, each value taken by its column's name: what the
    worker's positional read must equal."""
    named = {name: getattr(row, name) for name in CanonicalAlert.__dataclass_fields__}
    named.update(status=AlertStatus(row.status), severity=Severity(row.severity))
    return AlertRecord(
        alert=CanonicalAlert(**named),
        last_seen_at=row.last_seen_at,
        repeat_count=row.repeat_count,
        incident_id=row.incident_id or "",
    )


def test_fingerprint_state_reads_back_every_field_of_the_stored_occurrences(
    backend: Backend,
) -> None:
    """The worker reads the occurrences as untyped rows, by position, and converts them
    itself (``storage.alert_records``): each must equal the typed read of its row."""
    store = backend.store
    acme, _ = two_tenants(store)
    persist(store, BatchOutcome(alerts=[alert(acme, fingerprint="am:firing")]))
    persist(store, BatchOutcome(alerts=[alert(acme, fingerprint="am:ended")]))
    resolve = alert(
        acme,
        fingerprint="am:ended",
        status=AlertStatus.RESOLVED,
        ended=T0 + timedelta(minutes=5),
    )
    persist(store, BatchOutcome(alerts=[resolve]))
    with store.transaction([acme]) as tx:
        states = tx.fingerprint_states({(acme, "am:firing"), (acme, "am:ended")})
    with backend.engine.begin() as conn:
        scope(conn, acme)
        rows = conn.execute(sa.select(t.alerts).where(t.alerts.c.tenant_id == acme)).all()
    typed = {row.id: _by_name(row) for row in rows}
    read = [states[acme, "am:firing"].active, states[acme, "am:ended"].last_ended]
    assert all(record is not None for record in read)
    assert {r.alert.id: r for r in read if r is not None} == typed
    assert all(r.alert.started_at.tzinfo is UTC for r in typed.values())


def test_a_notification_lists_the_worst_alerts_and_counts_folded_deliveries(
    backend: Backend,
) -> None:
    """Read at a bounded cost (the count is kept, the list read per severity from an
    index), it answers what adding up and sorting every alert answered."""
    store = backend.store
    acme, globex = two_tenants(store)
    later = T0 + timedelta(seconds=20)
    persist(
        store,
        BatchOutcome(
            alerts=[
                alert(acme),
                alert(acme, fingerprint="am:mem", started=later),
                alert(acme, fingerprint="am:disk", started=later),
                replace(
                    alert(acme, fingerprint="am:db", started=later), severity=Severity.CRITICAL
                ),
                alert(globex),
            ]
        ),
    )
    for _ in range(3):
        persist(store, BatchOutcome(alerts=[alert(acme), alert(globex)]))
    persist(store, BatchOutcome(alerts=[alert(acme, fingerprint="am:disk", started=later)]))
    end = T0 + timedelta(minutes=1)
    mem_resolved = alert(
        acme, fingerprint="am:mem", status=AlertStatus.RESOLVED, started=later, ended=end
    )
    persist(store, BatchOutcome(alerts=[mem_resolved]))
    persist(store, BatchOutcome(alerts=[replace(mem_resolved, id=new_id())]))  # re-sent

    [incident] = store.list_incidents(acme, IncidentFilter(), 10, None).items
    # Repeats wrote the folded count alone; what the alerts made of the incident stays.
    assert (incident["alert_count"], incident["severity"]) == (4, "critical")
    detail = store.notification_detail(acme, incident["id"])
    assert detail is not None
    assert detail["dedup_count"] == 5  # 3 + 1 repeats, 1 repeated resolve
    shown = [(a["fingerprint"], a["repeat_count"]) for a in detail["alerts"]]
    assert shown == [("am:db", 1), ("am:cpu", 4), ("am:disk", 2), ("am:mem", 1)]
    assert store.notification_detail(globex, incident["id"]) is None


def test_incident_actions_and_feedback(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    persist(store, BatchOutcome(alerts=[alert(acme)]))
    [incident] = store.list_incidents(acme, IncidentFilter(), 10, None).items
    incident_id = incident["id"]

    acked = store.incident_action(acme, incident_id, "ack")
    assert acked is not None and acked["status"] == "acknowledged"
    assert acked["acknowledged_at"] is not None
    with pytest.raises(InvalidTransition):
        store.incident_action(acme, incident_id, "ack")
    assert store.incident_action(globex, incident_id, "resolve") is None
    snoozed = store.incident_action(acme, incident_id, "snooze", snooze_minutes=30)
    assert snoozed is not None and snoozed["snoozed_until"] is not None
    assert store.incident_action(acme, incident_id, "resolve")["status"] == "resolved"  # type: ignore[index]
    assert store.incident_action(acme, incident_id, "reopen")["status"] == "open"  # type: ignore[index]

    assert store.add_feedback(globex, incident_id, "noise") is None
    feedback = store.add_feedback(acme, incident_id, "noise")
    assert feedback is not None and feedback["verdict"] == "noise"
    detail = store.get_incident(acme, incident_id)
    assert detail is not None
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds == ["decision", "ack", "snooze", "resolve", "reopen", "feedback"]


def test_suppression_log_and_replay(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    store.update_settings(acme, {"governance_mode": "strict"})
    rule = Silence(id=new_id(), matchers=parse_matchers('{service="api"}'), author="ana")
    store.create_silence(acme, rule)
    persist(store, BatchOutcome(alerts=[alert(acme)]))
    [entry] = store.list_suppressions(acme, "suppressed", 10, None).items
    assert entry["rule_id"] == rule.id and entry["service"] == "api"
    assert store.list_suppressions(globex, None, 10, None).items == []
    assert store.replay_suppression(globex, entry["decision_id"]) is None
    replayed = store.replay_suppression(acme, entry["decision_id"])
    assert replayed is not None and replayed["replayed_at"] is not None


def test_the_worker_transaction_writes_only_claimed_tenants(backend: Backend) -> None:
    store = backend.store
    acme, globex = store.create_tenant("acme").id, store.create_tenant("globex").id
    theirs = AlertRecord(alert=alert(globex), last_seen_at=T0, repeat_count=1)
    with pytest.raises(ValueError, match="not claimed"), store.transaction([acme]) as tx:
        tx.save_alerts([theirs], [])
    assert store.list_alerts(globex, AlertFilter(), 10, None).items == []


# --------------------------------------------------------------------------- suggestions


def test_suggestions_saved_listed_accepted(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    now = T0 + timedelta(days=1)
    persist(store, BatchOutcome(alerts=[alert(acme)]))
    history = store.suggestion_history(acme, now)
    assert [a.fingerprint for a in history.alerts] == ["am:cpu"]
    assert history.alerts[0].started_at == T0
    assert store.suggestion_history(globex, now).alerts == ()

    link = Suggestion(
        kind="link",
        key="api->db",
        title="api seems to depend on db",
        evidence={"together": 12},
        proposal={"service": "api", "depends_on": "db"},
    )
    tune = Suggestion(
        kind="tune",
        key="am:cpu",
        title="CPU flaps",
        evidence={"fired": 40, "quick": 38},
        proposal={"matchers": '{alertname="CPU"}', "duration_days": 7},
    )
    store.save_suggestions(acme, [link, tune], now)
    store.save_suggestions(acme, [link, tune], now)  # refreshed, not duplicated
    listed = store.list_suggestions(acme, "open", None, 10, None).items
    assert sorted(s["key"] for s in listed) == ["am:cpu", "api->db"]
    assert next(s for s in listed if s["kind"] == "tune")["evidence"] == {"fired": 40, "quick": 38}
    assert store.list_suggestions(globex, None, None, 10, None).items == []

    by_kind = {s["kind"]: s["id"] for s in listed}
    assert store.accept_suggestion(globex, by_kind["link"], now) is None
    verdict = store.accept_suggestion(acme, by_kind["link"], now)
    assert verdict is not None and verdict.changed
    assert verdict.rule == {"kind": "dependency", "service": "api", "depends_on": "db"}
    again = store.accept_suggestion(acme, by_kind["link"], now)
    assert again is not None and not again.changed
    accepted = store.accept_suggestion(acme, by_kind["tune"], now)
    assert accepted is not None and accepted.rule is not None
    assert accepted.rule["kind"] == "silence"
    _, rules = store.tenant_config(acme)
    assert rules.dependencies == {"api": frozenset({"db"})}
    assert [s.ends_at for s in rules.silences] == [now + timedelta(days=7)]

    store.save_suggestions(acme, [], now)  # decided ones are kept
    statuses = {
        s["kind"]: s["status"] for s in store.list_suggestions(acme, None, None, 10, None).items
    }
    assert statuses == {"link": "accepted", "tune": "accepted"}


def test_replay_source_reads_alerts_and_what_happened(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    persist(store, BatchOutcome(alerts=[alert(acme), alert(acme, fingerprint="am:mem")]))
    source = store.replay_source(acme, T0, T0 + timedelta(hours=1), 10, timedelta(minutes=15))
    assert [r.alert.started_at for r in source.records] == [T0, T0]
    assert len(source.decisions) == 2 and list(source.incident_paged.values()) == [True]
    empty = store.replay_source(globex, T0, T0 + timedelta(hours=1), 10, timedelta(minutes=15))
    assert empty.records == [] and empty.decisions == []


# --------------------------------------------------------------------------- dead letters, keys


def test_dead_letters_listed_read_and_marked_replayed(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    mine, theirs = raw_event(acme), raw_event(globex)
    persist(store, BatchOutcome(dead=[DeadLetter(mine, "boom"), DeadLetter(theirs, "bang")]))

    every = store.list_dead_letters(None, 10)
    assert sorted(d["tenant_id"] for d in every) == sorted([acme, globex])
    assert [d["id"] for d in every] == sorted((d["id"] for d in every), reverse=True)
    assert len(store.list_dead_letters(None, 1)) == 1
    [listed] = store.list_dead_letters(acme, 10)
    assert (listed["event_id"], listed["error"], listed["attempts"]) == (mine.event_id, "boom", 5)
    assert listed["replayed_at"] is None

    for ref in (listed["id"], mine.event_id):
        dead = store.get_dead_letter(ref)
        assert dead is not None and dead.error == "boom"
        assert dead.event == mine
    assert store.get_dead_letter(new_id()) is None

    store.mark_replayed(mine.event_id)
    store.mark_replayed(new_id())  # unknown: nothing happens
    [listed] = store.list_dead_letters(acme, 10)
    assert listed["replayed_at"] is not None
    [other] = store.list_dead_letters(globex, 10)
    assert other["replayed_at"] is None

    # A replayed event that fails again replaces its dead letter.
    persist(store, BatchOutcome(dead=[DeadLetter(mine, "boom again")]))
    [listed] = store.list_dead_letters(acme, 10)
    assert listed["error"] == "boom again" and listed["replayed_at"] is None


# --------------------------------------------------------------------------- pagination


def test_cursor_pagination(backend: Backend) -> None:
    store = backend.store
    acme, globex = two_tenants(store)
    alerts = [
        alert(acme, fingerprint=f"am:{n}", service=f"svc{n}", started=T0 + timedelta(hours=n))
        for n in range(5)
    ]
    persist(store, BatchOutcome(alerts=alerts))

    def walk(fetch: object) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = fetch(cursor)  # type: ignore[operator]
            assert len(page.items) <= 2
            seen += [item["id"] for item in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    alert_ids = walk(lambda c: store.list_alerts(acme, AlertFilter(), 2, c))
    assert alert_ids == sorted((a.id for a in alerts), reverse=True)
    incident_ids = walk(lambda c: store.list_incidents(acme, IncidentFilter(), 2, c))
    assert len(incident_ids) == 5 and incident_ids == sorted(incident_ids, reverse=True)
    since = AlertFilter(since=T0 + timedelta(hours=3))
    assert len(store.list_alerts(acme, since, 10, None).items) == 2
    assert store.list_alerts(globex, AlertFilter(), 2, None).next_cursor is None
    with pytest.raises(ValueError):
        store.list_alerts(acme, AlertFilter(), 2, "not-a-cursor")

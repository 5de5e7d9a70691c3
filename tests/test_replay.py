"""What-if replay: stored alerts (sent through the signed webhook and correlated by the
real worker) re-run through a proposed configuration, through the HTTP API and the
CLI, compared with what actually happened — and nothing in the database changes."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from conftest import TenantHandle, cli_environment, drain, tenant_connection
from dd0c_alert.cli import app as cli_app
from dd0c_alert.config import Settings
from dd0c_alert.correlation.dedup import AlertRecord
from dd0c_alert.correlation.model import Rules, TenantSettings
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.pipeline import replay as replay_module
from dd0c_alert.pipeline.replay import notifications, parse_proposal, simulate
from test_smoke_custom import sign
from webhook_helpers import new_tenant, running

pytestmark = pytest.mark.both_modes

SECRET = "s3cret"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
SINCE = T0 - timedelta(hours=1)

PROPOSAL = {
    "settings": {"correlation_window_seconds": 600, "governance_mode": "strict"},
    "silences": [{"matchers": '{service="batch"}', "comment": "the nightly batch"}],
}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def send(client: Any, tenant: TenantHandle, items: list[dict[str, Any]]) -> None:
    body = json.dumps(items).encode()
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign(SECRET, body))
    assert response.status_code == 202, response.text
    drain(tenant.runtime)


def alert(title: str, service: str, minute: float, severity: str = "warning") -> dict[str, Any]:
    return {
        "title": title,
        "service": service,
        "severity": severity,
        "started_at": iso(T0 + timedelta(minutes=minute)),
    }


def history(client: Any, tenant: TenantHandle) -> None:
    """Two api alerts 7 minutes apart, one of them resolving later; a deploy of api
    before them; a batch warning, then a critical batch alert a minute later (one
    incident). Sent a day late but in event-time order, they group as live delivery
    would: under a 5-min window the api alerts are two incidents; under a 10-min one,
    one."""
    tenant.integration("custom", SECRET)
    deploy = {"kind": "deploy", "service": "api", "version": "v42", "started_at": iso(T0)}
    send(
        client,
        tenant,
        [
            deploy,
            alert("API latency", "api", 2),
            alert("API errors", "api", 9),
            alert("Batch slow", "batch", 60),
            alert("Batch failed", "batch", 61, "critical"),
        ],
    )
    resolve = {**alert("API latency", "api", 2), "status": "resolved"}
    send(client, tenant, [{**resolve, "ended_at": iso(T0 + timedelta(minutes=25))}])


#: Written by the notifier in the background as it works through the outbox the
#: ingested alerts left: not by a replay, and not at a time the test controls.
NOTIFIER_TABLES = {
    "notification_intents",
    "deliveries",
    "delivery_attempts",
    "destination_health",
    "held_pages",
}


def row_counts(settings: Settings, tenant_id: str) -> dict[str, int]:
    """Rows per table the tenant can see (on PostgreSQL: its own, by row-level security)."""
    with tenant_connection(settings, tenant_id) as conn:
        tables = set(sa.inspect(conn).get_table_names()) - NOTIFIER_TABLES
        return {
            table: conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
            for table in sorted(tables)
        }


def post_replay(client: Any, tenant: TenantHandle, body: dict[str, Any]) -> Any:
    response = client.post("/v1/replay", headers=tenant.auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_replay_with_current_configuration_reproduces_what_happened(
    client, tenant: TenantHandle, settings: Settings
) -> None:
    history(client, tenant)
    before = row_counts(settings, tenant.id)
    report = post_replay(client, tenant, {"since": iso(SINCE)})
    assert report["alerts"] == 4
    assert report["configuration"]["changed"] == []
    assert report["actual"] == report["proposed"]
    assert report["actual"]["incidents"] == 3 and report["actual"]["pages"] == 3
    assert report["grouping"] == {
        "unchanged": 3,
        "merged": 0,
        "split": 0,
        "differences": [],
        "truncated": False,
    }
    assert report["critical_alerts_affected"] == []
    api = [i for i in report["incidents"] if i["services"] == ["api"]]
    assert [len(i["deploys"]) for i in api] == [1, 1]  # both began within the 15-min lookback
    assert row_counts(settings, tenant.id) == before


def test_proposed_window_and_strict_silence_compared_with_what_happened(
    client, tenant: TenantHandle, settings: Settings
) -> None:
    history(client, tenant)
    before = row_counts(settings, tenant.id)
    report = post_replay(
        client, tenant, {"since": iso(SINCE), "until": iso(T0 + timedelta(hours=2)), **PROPOSAL}
    )
    assert row_counts(settings, tenant.id) == before  # nothing written

    assert report["configuration"]["changed"] == [
        "correlation_window_seconds",
        "governance_mode",
        "silences",
    ]
    assert report["configuration"]["settings"]["correlation_window_seconds"] == 600
    assert report["actual"] == {
        "incidents": 3,
        "pages": 3,
        "alerts_suppressed": 0,
        "suppressed_by": {},
        "alerts_would_suppress": 0,
        "would_suppress_by": {},
    }
    # The two api incidents merge; the batch warning is suppressed, so the critical
    # batch alert (never suppressed) pages itself instead of riding on its page.
    assert report["proposed"] == {
        "incidents": 2,
        "pages": 2,
        "alerts_suppressed": 1,
        "suppressed_by": {"proposed-silence-1": 1},
        "alerts_would_suppress": 0,
        "would_suppress_by": {},
    }
    grouping = report["grouping"]
    assert (grouping["unchanged"], grouping["merged"], grouping["split"]) == (1, 1, 0)
    [merged] = grouping["differences"]
    assert merged["change"] == "merged" and merged["alerts"] == 2 and len(merged["actual"]) == 2
    [api] = [i for i in report["incidents"] if i["services"] == ["api"]]
    assert api["alert_count"] == 2 and sorted(api["actual_incidents"]) == sorted(merged["actual"])

    [critical] = report["critical_alerts_affected"]
    assert critical["title"] == "Batch failed"
    assert critical["actual"]["paged"] is False and critical["actual"]["incident_paged"] is True
    assert critical["proposed"]["paged"] is True and critical["proposed"]["suppressed_by"] is None

    # Audit mode instead: the silence only would suppress; pages are as before.
    audit = {**PROPOSAL, "settings": {"correlation_window_seconds": 600}}
    report = post_replay(client, tenant, {"since": iso(SINCE), **audit})
    assert report["proposed"]["pages"] == 2  # one api incident, one batch incident
    assert report["proposed"]["alerts_suppressed"] == 0
    assert report["proposed"]["would_suppress_by"] == {"proposed-silence-1": 1}
    assert report["critical_alerts_affected"] == []
    assert row_counts(settings, tenant.id) == before


def test_replay_of_another_tenant_sees_none_of_these_alerts(client, tenant: TenantHandle) -> None:
    history(client, tenant)
    other = new_tenant(tenant.runtime, "other")
    report = post_replay(client, other, {"since": iso(SINCE), **PROPOSAL})
    assert report["alerts"] == 0 and report["proposed"]["incidents"] == 0


def test_one_replay_at_a_time_the_next_is_told_when_to_come_back(
    client, tenant: TenantHandle
) -> None:
    """Each replay holds its range in memory, in the process that admits webhooks: a
    few at once (some 650 MB each at the cap) could take it down."""
    history(client, tenant)
    body = {"since": iso(SINCE), **PROPOSAL}
    assert replay_module._ONE_AT_A_TIME.acquire(blocking=False)  # one is running
    try:
        busy = client.post("/v1/replay", headers=tenant.auth, json=body)
    finally:
        replay_module._ONE_AT_A_TIME.release()
    assert busy.status_code == 429, busy.text
    assert busy.json()["error"] == "busy" and int(busy.headers["Retry-After"]) > 0
    assert post_replay(client, tenant, body)["alerts"] > 0  # its turn now


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"settings": {"correlation_window": 600}}, "settings.correlation_window: unknown"),
        ({"settings": {"flap_threshold": 1}}, "expected a whole number from 2 to 100"),
        # as PATCH /v1/settings bounds them; unbounded, these overflowed the engine's
        # time arithmetic (a 500)
        ({"settings": {"deploy_lookback_seconds": 10**15}}, "from 0 to 86400"),
        ({"settings": {"max_incident_span_seconds": 10**15}}, "from 60 to 2592000"),
        ({"settings": {"flap_window_seconds": 10**15}}, "from 60 to 86400"),
        ({"settings": {"correlation_window_seconds": 29}}, "from 30 to 86400"),
        ({"dependencies": {"a": ["b", "a"]}}, "'a' cannot depend on itself"),
        ({"settings": {"governance_mode": "loose"}}, "expected 'audit' or 'strict'"),
        ({"silences": [{"matchers": "{}"}]}, "at least one matcher"),
        ({"silences": [{"matchers": "{a=b}", "schedule": "someday"}]}, "bad schedule"),
        ({"inhibitions": [{"source": "{a=b}"}]}, "both 'source' and 'target'"),
        ({"dependencies": {"a": "b"}}, "dependencies.a"),
        ({"until": iso(SINCE - timedelta(hours=1))}, "'until' must be later"),
    ],
)
def test_invalid_proposals_are_refused_with_what_is_wrong(
    client, tenant: TenantHandle, body: dict[str, Any], detail: str
) -> None:
    response = client.post("/v1/replay", headers=tenant.auth, json={"since": iso(SINCE), **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert detail in response.json()["detail"]


def test_proposal_accepts_the_topology_body_as_is() -> None:
    proposal = parse_proposal({"topology": {"dependencies": {"checkout": ["db"]}}})
    assert proposal.dependencies == {"checkout": frozenset({"db"})}
    assert parse_proposal({}).dependencies is None
    with pytest.raises(ValueError, match="not both"):
        parse_proposal({"topology": {}, "dependencies": {}})
    with pytest.raises(ValueError, match="unknown keys"):
        parse_proposal({"rules": []})


def test_cli_replay_with_a_rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    overrides = cli_environment(monkeypatch, data)
    with running(data, suggest_interval_seconds=0, **overrides) as (runtime, client):
        tenant = new_tenant(runtime)
        history(client, tenant)
        via_api = post_replay(client, tenant, {"since": iso(SINCE), **PROPOSAL})
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(PROPOSAL))
    runner = CliRunner()
    args = ["replay", "--tenant", tenant.id, "--since", iso(SINCE), "--rules", str(rules)]
    result = runner.invoke(cli_app, [*args, "--until", via_api["until"], "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("actual", "proposed", "grouping", "alerts"):
        assert report[key] == via_api[key]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "replayed 4 alerts" in lines[0]
    assert "correlation_window_seconds, governance_mode, silences" in lines[1]
    assert [line.split() for line in lines if line.startswith(("incidents", "pages"))] == [
        ["incidents", "3", "2"],
        ["pages", "3", "2"],
    ]
    assert "critical alerts affected: 1" in result.output
    assert "grouping: 1 unchanged, 1 merged, 0 split" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"settings": {"nope": 1}}')
    result = runner.invoke(
        cli_app, ["replay", "--tenant", tenant.id, "--since", iso(SINCE), "--rules", str(bad)]
    )
    assert result.exit_code != 0 and "unknown setting" in result.output


# --------------------------------------------------------------------------- pure replay


def stored(n: int, seed: int) -> list[AlertRecord]:
    """Random stored alerts over a few hours on a few services; most end, some were
    only ever seen resolved."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        start = T0 + timedelta(seconds=rng.randrange(0, 6 * 3600))
        end = start + timedelta(seconds=rng.choice([30, 300, 1800])) if rng.random() < 0.8 else None
        alert = CanonicalAlert(
            id=f"A{i:05d}",
            tenant_id="t",
            source="custom",
            source_ref=f"fp{i}",
            fingerprint=f"fp{i}",
            status=AlertStatus.RESOLVED if end else AlertStatus.FIRING,
            severity=rng.choice(list(Severity)),
            title=f"alert {i}",
            service=f"svc{rng.randrange(12)}",
            started_at=start,
            received_at=start + timedelta(seconds=rng.choice([0, 0, 0, 900])),
            ended_at=end,
        )
        only_resolved = end is not None and rng.random() < 0.05
        records.append(
            AlertRecord(
                alert=alert, last_seen_at=end or start, repeat_count=0 if only_resolved else 1
            )
        )
    return records


def test_notifications_replay_each_record_as_its_firing_and_its_resolve() -> None:
    records = stored(200, 1)
    sent = notifications(records)
    times = [n.ended_at if n.status is AlertStatus.RESOLVED else n.started_at for n in sent]
    assert times == sorted(times)
    ended = sum(r.alert.status is AlertStatus.RESOLVED for r in records)
    only_resolved = sum(r.repeat_count == 0 for r in records)
    assert len(sent) == len(records) + ended - only_resolved


def test_parking_old_incidents_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    records = stored(1500, 2)
    settings = TenantSettings(correlation_window_seconds=120)
    rules = Rules(dependencies={"svc1": frozenset({"svc2"}), "svc3": frozenset({"svc1"})})
    monkeypatch.setattr(replay_module, "PARK_ABOVE", 2)
    parked = simulate("t", records, [], settings, rules)
    monkeypatch.setattr(replay_module, "PARK_ABOVE", 10**9)
    kept = simulate("t", records, [], settings, rules)
    assert parked.incident_of == kept.incident_of
    assert {k: [d.page for d in v] for k, v in parked.decisions.items()} == {
        k: [d.page for d in v] for k, v in kept.decisions.items()
    }
    assert sorted(parked.incidents) == sorted(kept.incidents)
    assert set(parked.incident_of.values()) == set(parked.incidents)

"""How notifications fold into alert records: repeats, resolves, late copies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import (
    AlertStatus,
    CanonicalAlert,
    DeployEvent,
    DeployStatus,
    Severity,
)
from dd0c_alert.pipeline.persist import persist
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import AlertFilter, BatchOutcome

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def alert(
    tenant: str,
    status: AlertStatus = AlertStatus.FIRING,
    *,
    fingerprint: str = "am:abc",
    started: datetime = T0,
    severity: Severity = Severity.HIGH,
    description: str = "",
    ended: datetime | None = None,
) -> CanonicalAlert:
    return CanonicalAlert(
        id=new_id(),
        tenant_id=tenant,
        source="alertmanager",
        source_ref="abc",
        fingerprint=fingerprint,
        status=status,
        severity=severity,
        title="CPU high",
        description=description,
        started_at=started,
        received_at=datetime.now(UTC),
        ended_at=ended,
        event_id=new_id(),
    )


def stored(runtime: Runtime, tenant: str) -> list[dict]:
    return runtime.store.list_alerts(tenant, AlertFilter(), 100, None).items


def apply(runtime: Runtime, *alerts: CanonicalAlert) -> None:
    persist(runtime.store, BatchOutcome(alerts=list(alerts)))


def test_repeats_fold_into_one_alert_with_a_count(runtime: Runtime, tenant) -> None:
    apply(runtime, alert(tenant.id), alert(tenant.id))
    apply(runtime, alert(tenant.id))
    [only] = stored(runtime, tenant.id)
    assert (only["status"], only["repeat_count"]) == ("firing", 3)


def test_resolve_ends_the_active_alert_and_a_new_firing_starts_another(runtime, tenant) -> None:
    apply(runtime, alert(tenant.id))
    apply(runtime, alert(tenant.id, AlertStatus.RESOLVED, ended=T0 + timedelta(minutes=3)))
    apply(runtime, alert(tenant.id, started=T0 + timedelta(minutes=10)))
    newest, oldest = stored(runtime, tenant.id)
    assert (oldest["status"], oldest["ended_at"]) == ("resolved", "2026-11-27T10:03:00Z")
    assert (newest["status"], newest["repeat_count"]) == ("firing", 1)


def test_late_copy_of_an_ended_alert_does_not_reopen_it(runtime, tenant) -> None:
    apply(runtime, alert(tenant.id))
    apply(runtime, alert(tenant.id, AlertStatus.RESOLVED, ended=T0 + timedelta(minutes=3)))
    apply(runtime, alert(tenant.id, started=T0))  # a delayed repeat of the first firing
    [only] = stored(runtime, tenant.id)
    assert (only["status"], only["repeat_count"]) == ("resolved", 2)


def test_repeated_resolve_is_not_a_new_alert(runtime, tenant) -> None:
    resolved = alert(tenant.id, AlertStatus.RESOLVED, ended=T0 + timedelta(minutes=3))
    apply(runtime, resolved)
    apply(runtime, alert(tenant.id, AlertStatus.RESOLVED, ended=T0 + timedelta(minutes=3)))
    [only] = stored(runtime, tenant.id)
    assert (only["status"], only["repeat_count"]) == ("resolved", 0)


def test_follow_up_keeps_worst_severity_and_known_description(runtime, tenant) -> None:
    apply(runtime, alert(tenant.id, severity=Severity.CRITICAL, description="pool exhausted"))
    apply(runtime, alert(tenant.id, severity=Severity.MEDIUM))
    [only] = stored(runtime, tenant.id)
    assert (only["severity"], only["description"]) == ("critical", "pool exhausted")


def test_fingerprints_are_per_tenant(runtime, tenant) -> None:
    other = runtime.store.create_tenant("other")
    apply(runtime, alert(tenant.id), alert(other.id))
    assert len(stored(runtime, tenant.id)) == len(stored(runtime, other.id)) == 1


def test_deploy_status_updates_fold_into_one_deploy(runtime, tenant) -> None:
    def deploy(status: DeployStatus, title: str = "") -> DeployEvent:
        return DeployEvent(
            id=new_id(),
            tenant_id=tenant.id,
            source="github",
            source_ref="deployment:1",
            service="api",
            status=status,
            started_at=T0,
            received_at=T0,
            title=title,
            finished_at=T0 + timedelta(minutes=2) if status is DeployStatus.SUCCESS else None,
        )

    persist(runtime.store, BatchOutcome(deploys=[deploy(DeployStatus.PENDING, "Ship v2")]))
    persist(runtime.store, BatchOutcome(deploys=[deploy(DeployStatus.SUCCESS)]))
    [only] = runtime.store.list_deploys(tenant.id, AlertFilter(), 10, None).items
    assert (only["status"], only["title"], only["finished_at"]) == (
        "success",
        "Ship v2",
        "2026-11-27T10:02:00Z",
    )

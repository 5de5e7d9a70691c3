"""A notification of a storm-sized incident reads a bounded number of rows: none of its
queries sorts or walks all of the incident's alerts (SQLite's query plans say so)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet

from dd0c_alert.app import open_store
from dd0c_alert.config import Settings
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.pipeline.persist import persist
from dd0c_alert.storage.ports import BatchOutcome, IncidentFilter

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _alert(tenant: str, n: int) -> CanonicalAlert:
    return CanonicalAlert(
        id=new_id(),
        event_id=new_id(),
        tenant_id=tenant,
        source="alertmanager",
        source_ref=f"pod-{n}",
        fingerprint=f"am:pod-{n}",
        status=AlertStatus.FIRING,
        severity=Severity.HIGH,
        title="api is unwell",
        service="api",
        labels={"alertname": "Down", "pod": f"pod-{n}"},
        started_at=T0,
        received_at=T0,
    )


def test_no_notification_query_sorts_or_scans_the_incidents_alerts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=Fernet.generate_key().decode())
    store = open_store(settings)
    tenant = store.create_tenant("acme").id
    persist(store, BatchOutcome(alerts=[_alert(tenant, n) for n in range(300)]))
    [incident] = store.list_incidents(tenant, IncidentFilter(), 10, None).items

    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    engine = store._read  # the engine the notifier's reads go through
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        detail = store.notification_detail(tenant, incident["id"])
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert detail is not None and len(detail["alerts"]) == 20

    on_alerts = [(s, p) for s, p in seen if "FROM alerts" in s]
    assert on_alerts
    with engine.connect() as conn:
        for statement, parameters in on_alerts:
            plan = " / ".join(
                row[3]
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert "TEMP B-TREE" not in plan, plan
            assert "ix_alerts_incident_worst" in plan, plan

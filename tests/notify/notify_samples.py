"""Incidents the notify tests render: one rich, with everything a message can show."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dd0c_alert.domain.models import Severity
from dd0c_alert.notify.model import AlertView, DeployView, IncidentView

OPENED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SNAPSHOTS = Path(__file__).parent / "snapshots"


def incident(**changes: Any) -> IncidentView:
    base = IncidentView(
        id="inc_01HZX",
        tenant_id="ten_acme",
        title="Checkout latency high",
        severity=Severity.CRITICAL,
        status="open",
        services=("checkout", "payments", "db"),
        probable_root="db",
        alert_count=12,
        dedup_count=35,
        opened_at=OPENED,
        noise_score=30,
        noise_reasons=("deploy attached (+25)", "PR title mentions a feature flag (+5)"),
        deploys=(
            DeployView(
                service="db",
                version="v2.4.1",
                author="alice",
                title="Raise connection pool to 200 <flag:pool_v2>",
                url="https://github.com/acme/db/pull/42",
                environment="production",
                started_at=OPENED - timedelta(minutes=7),
            ),
        ),
        top_alerts=(
            AlertView(
                title="DB connections saturated",
                severity=Severity.CRITICAL,
                service="db",
                status="firing",
                repeat_count=20,
                source="alertmanager",
                source_url="https://prom.example.com/alerts?fp=abc",
                started_at=OPENED,
            ),
            AlertView(
                title="Checkout p99 > 2s & rising",
                severity=Severity.HIGH,
                service="checkout",
                status="firing",
                repeat_count=1,
                source="datadog",
                source_url=None,
                started_at=OPENED + timedelta(minutes=1),
            ),
        ),
        url="https://alerts.example.com/incidents/inc_01HZX",
    )
    return dataclasses.replace(base, **changes)


def acknowledged() -> IncidentView:
    return incident(
        status="acknowledged", acknowledged_at=OPENED + timedelta(minutes=4), acknowledged_by="bob"
    )


def resolved() -> IncidentView:
    return incident(
        status="resolved",
        acknowledged_at=OPENED + timedelta(minutes=4),
        acknowledged_by="bob",
        resolved_at=OPENED + timedelta(minutes=42, seconds=5),
        resolved_by="bob",
    )


def assert_snapshot(name: str, value: Any) -> None:
    """Compare ``value`` with ``snapshots/<name>.json``; ``DD0C_UPDATE_SNAPSHOTS=1``
    rewrites the file instead (review the diff before committing it)."""
    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("DD0C_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text)
    assert json.loads(path.read_text()) == json.loads(text), f"snapshot {name} differs"

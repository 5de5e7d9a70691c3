"""``execute_many`` hands SQLite the very values ``Connection.execute`` would: the same
stored text for times (aware, naive, other zones), JSON, booleans, enums and NULLs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from dd0c_alert.domain.models import AlertStatus, Severity
from dd0c_alert.storage import schema
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.bulk import execute_many, insert_ignoring_duplicates, upsert_adding
from dd0c_alert.storage.engine import make_engines

T0 = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
BERLIN = timezone(timedelta(hours=1))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    writer, reader = make_engines(f"sqlite:///{tmp_path / 'bulk.db'}")
    t.metadata.create_all(writer)
    yield writer
    writer.dispose()
    reader.dispose()


def _alert(n: int, prefix: str) -> dict[str, Any]:
    return {
        "id": f"{prefix}{n}",
        "tenant_id": f"tenant-{prefix}",  # one firing alert per tenant and fingerprint
        "event_id": f"event{n}",
        "source": "alertmanager",
        "source_ref": "",
        "fingerprint": f"fp{n}",
        "status": AlertStatus.RESOLVED if n % 2 else AlertStatus.FIRING,
        "severity": Severity.CRITICAL,
        "title": "Disk — ünïcode ✓",
        "description": "",
        "service": "checkout",
        "environment": "prod",
        "resource": "pod-1",
        "labels": {"alertname": "DiskFull", "n": str(n), "nested": {"a": [1, 2.5, None]}},
        "links": [],
        "started_at": T0,
        "received_at": T0.astimezone(BERLIN),
        "last_seen_at": T0.replace(tzinfo=None) + timedelta(seconds=n),
        "ended_at": None if n % 2 == 0 else T0 + timedelta(minutes=n),
        "raw_ref": "",
        "repeat_count": n,
        "incident_id": None if n == 0 else "incident",
    }


def _stored(conn: sa.Connection, table: str) -> list[tuple[Any, ...]]:
    """Rows as SQLite holds them, without the id's prefix and the tenant."""
    rows = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").all()
    return [(row[0][1:], *row[2:]) for row in rows]


def test_inserts_store_what_sqlalchemy_stores(engine: sa.Engine) -> None:
    statement = t.alerts.insert()
    with engine.begin() as conn:
        conn.execute(statement, [_alert(n, "a") for n in range(4)])
        execute_many(conn, statement, [_alert(n, "b") for n in range(4)])
        stored = _stored(conn, "alerts")
    assert stored[:4] == stored[4:]
    assert len(stored) == 8
    # Times are UTC text with microseconds, whatever zone (or none) they came in.
    # (started_at aware UTC, received_at in +01:00, last_seen_at naive, ended_at)
    assert stored[3][14:18] == (
        "2026-11-27 10:00:00.123456",
        "2026-11-27 10:00:00.123456",
        "2026-11-27 10:00:03.123456",
        "2026-11-27 10:03:00.123456",
    )
    assert stored[0][17] is None


def test_updates_with_bound_keys(engine: sa.Engine) -> None:
    update = (
        t.alerts.update()
        .where(t.alerts.c.id == sa.bindparam("_id"))
        .values(last_seen_at=sa.bindparam("seen"), repeat_count=sa.bindparam("repeats"))
    )
    later = T0.astimezone(BERLIN) + timedelta(hours=1)
    with engine.begin() as conn:
        execute_many(conn, t.alerts.insert(), [_alert(n, p) for p in "ab" for n in range(3)])
        changes = [{"_id": f"{n}", "seen": later, "repeats": 9} for n in range(3)]
        conn.execute(update, [{**row, "_id": "a" + row["_id"]} for row in changes])
        execute_many(conn, update, [{**row, "_id": "b" + row["_id"]} for row in changes])
        stored = _stored(conn, "alerts")
    assert stored[:3] == stored[3:]
    assert {row[-2] for row in stored} == {9}


def test_upserts_add_and_duplicates_are_ignored(engine: sa.Engine) -> None:
    hour = {"tenant_id": "tenant", "hour": T0, "service": "s", "source": "x", "severity": "info"}
    with engine.begin() as conn:
        for _ in range(3):
            upsert_adding(
                conn,
                t.rollups_hourly,
                [{**hour, "alerts": 2, "incidents_opened": 1, "pages": 0}],
                ("alerts", "incidents_opened", "pages"),
            )
        row = {"tenant_id": "tenant", "service": "s", "incident_id": "i"}
        insert_ignoring_duplicates(conn, t.incident_services, [row, row])
        counts = conn.execute(sa.select(t.rollups_hourly.c.alerts, t.rollups_hourly.c.hour)).all()
        services = conn.execute(sa.select(sa.func.count()).select_from(t.incident_services))
        assert counts == [(6, T0)]
        assert services.scalar() == 1


def test_a_missing_key_is_an_error_not_a_null(engine: sa.Engine) -> None:
    row = _alert(1, "a")
    del row["title"]
    with engine.begin() as conn, pytest.raises(KeyError):
        execute_many(conn, t.alerts.insert(), [_alert(0, "a"), row])


def test_a_times_text_is_its_utc_instant_once_remembered_and_after_the_memory_fills() -> None:
    """Times are remembered as text by value: equal instants in other zones share one
    entry, a naive time (UTC) and an aware one with the same wall clock do not."""
    processor = t.UTCDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    naive_ten = T0.replace(tzinfo=None)
    ten_in_berlin = T0.replace(tzinfo=BERLIN)  # 09:00 UTC
    expected = {
        T0: "2026-11-27 10:00:00.123456",
        T0.astimezone(BERLIN): "2026-11-27 10:00:00.123456",
        naive_ten: "2026-11-27 10:00:00.123456",
        ten_in_berlin: "2026-11-27 09:00:00.123456",
    }
    for _ in range(2):
        assert [processor(value) for value in expected] == list(expected.values())
        assert [processor(value) for value in reversed(expected)] == list(
            reversed(expected.values())
        )
    assert processor(None) is None
    many = [T0 + timedelta(seconds=n) for n in range(schema._TEXTS_MAX + 10)]
    texts = [processor(value) for value in many]
    assert len(schema._TEXTS) <= schema._TEXTS_MAX
    assert texts[-1] == "2026-11-27 11:08:25.123456"
    assert processor(ten_in_berlin) == "2026-11-27 09:00:00.123456"

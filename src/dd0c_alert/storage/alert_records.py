"""The worker's reads of stored occurrences (``AlertRecord``), as the driver returns them.

A batch reads the firing and the latest ended occurrence of each of its fingerprints:
in a mix of repeats, every alert of it. Read through SQLAlchemy's typed results, each
row's 22 values went through a result processor and were then fetched from the row by
name: 25 us a row of the worker's 170 us an alert, two thirds of it Python. These
queries are untyped text whose rows are read by position, and the few values that need
it are converted here, from what either driver returns (SQLite's text, psycopg's
objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import orjson
import sqlalchemy as sa

from dd0c_alert.correlation.dedup import AlertRecord
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity

from . import schema as t
from .schema import utc_from_text

#: The columns in the table's order: ``record`` reads the queries below and whole rows
#: of ``alerts`` (``select(alerts)``) alike.
_NAMES = tuple(column.name for column in t.alerts.c)


def _columns(table: str) -> str:
    return ", ".join(f"{table}.{name}" for name in _NAMES)


_STATUS = {s.value: s for s in AlertStatus}
_SEVERITY = {s.value: s for s in Severity}

#: Each listed fingerprint's firing occurrence (at most one: ``ux_alerts_active_fingerprint``).
FIRING = {
    "sqlite": sa.text(
        f"SELECT {_columns('alerts')} FROM alerts WHERE tenant_id = :tenant AND status = 'firing'"  # noqa: S608
        " AND fingerprint IN (SELECT value FROM json_each(:fingerprints))"
    ),
    "postgresql": sa.text(
        f"SELECT {_columns('alerts')} FROM alerts WHERE tenant_id = :tenant AND status = 'firing'"  # noqa: S608
        " AND fingerprint = ANY(CAST(:fingerprints AS text[]))"
    ),
}

#: Each listed fingerprint's latest ended occurrence: one ordered probe per value of the
#: list, not a scan of its history. PostgreSQL gets it as a ``LATERAL`` subquery that
#: returns the row itself: given SQLite's form (join ``alerts`` on the id a subquery
#: picks), it hashed all of the tenant's alerts, which row-level security hands it as a
#: cheap-looking scan by ``tenant_id``, and probed them with the subquery's ids.
_LATEST_ENDED_PROBE = (
    "SELECT {} FROM alerts b WHERE b.tenant_id = :tenant"
    " AND b.fingerprint = f.value AND b.status <> 'firing'"
    " ORDER BY b.started_at DESC, b.id DESC LIMIT 1"
)
LATEST_ENDED = {
    "sqlite": sa.text(
        f"SELECT {_columns('alerts')} FROM json_each(:fingerprints) AS f"  # noqa: S608
        f" JOIN alerts ON alerts.id = ({_LATEST_ENDED_PROBE.format('b.id')})"
    ),
    "postgresql": sa.text(
        f"SELECT {_columns('latest')} FROM unnest(CAST(:fingerprints AS text[])) AS f(value)"  # noqa: S608
        f" CROSS JOIN LATERAL ({_LATEST_ENDED_PROBE.format('b.*')}) AS latest"
    ),
}


def _time(value: Any) -> Any:
    """A stored time as an aware UTC datetime: SQLite returns the naive UTC text
    ``schema.UTCDateTime`` wrote, psycopg an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return utc_from_text(value)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _document(value: Any) -> Any:
    """A JSON column: text from SQLite, already decoded from psycopg."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def record(values: Sequence[Any]) -> AlertRecord:
    """An ``AlertRecord`` from a row of the queries above or of ``select(alerts)``,
    typed or not, by position."""
    (
        id_,
        tenant_id,
        event_id,
        source,
        source_ref,
        fingerprint,
        status,
        severity,
        title,
        description,
        service,
        environment,
        resource,
        labels,
        links,
        started_at,
        received_at,
        last_seen_at,
        ended_at,
        raw_ref,
        repeat_count,
        incident_id,
    ) = values
    alert = CanonicalAlert(
        id=id_,
        tenant_id=tenant_id,
        source=source,
        source_ref=source_ref,
        fingerprint=fingerprint,
        status=_STATUS[status],
        severity=_SEVERITY[severity],
        title=title,
        description=description,
        service=service,
        environment=environment,
        resource=resource,
        labels=_document(labels),
        links=_document(links),
        started_at=_time(started_at),
        received_at=_time(received_at),
        ended_at=_time(ended_at),
        raw_ref=raw_ref,
        event_id=event_id,
    )
    return AlertRecord(
        alert=alert,
        last_seen_at=_time(last_seen_at),
        repeat_count=repeat_count,
        incident_id=incident_id or "",
    )

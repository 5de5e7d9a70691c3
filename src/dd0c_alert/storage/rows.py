"""How stored rows are shown and paged: the helpers every query module shares.

A leaf module (it imports only the schema's types), so the query modules and the
store can all use it without importing one another.
"""

from __future__ import annotations

import base64
import functools
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

#: The ids cursors point at: ULIDs from ``domain.ids.new_id``.
_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor from ``encode_cursor`` points after; ValueError for anything else
    (a cursor that decodes to no id must not silently answer an empty page)."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        last_id = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None
    if not _ID.fullmatch(last_id):
        raise ValueError("invalid cursor")
    return last_id


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def month_of(epoch: float) -> str:
    """``YYYY-MM`` (UTC) of a Unix time; every queued event asks, so by its day: a
    cached lookup is a tenth of formatting a datetime (0.2 against 2 µs)."""
    return _month_of_day(int(epoch // 86_400))


@functools.lru_cache(maxsize=64)
def _month_of_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m")


def alert_dict(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "tenant_id": row.tenant_id,
        "source": row.source,
        "source_ref": row.source_ref,
        "fingerprint": row.fingerprint,
        "status": row.status,
        "severity": row.severity,
        "title": row.title,
        "description": row.description,
        "service": row.service,
        "environment": row.environment,
        "resource": row.resource,
        "labels": row.labels,
        "links": row.links,
        "started_at": iso(row.started_at),
        "received_at": iso(row.received_at),
        "last_seen_at": iso(row.last_seen_at),
        "ended_at": iso(row.ended_at),
        "repeat_count": row.repeat_count,
        "event_id": row.event_id,
        "raw_ref": row.raw_ref,
        "incident_id": row.incident_id,
    }


def deploy_dict(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "tenant_id": row.tenant_id,
        "source": row.source,
        "source_ref": row.source_ref,
        "service": row.service,
        "environment": row.environment,
        "version": row.version,
        "commit": row.commit,
        "author": row.author,
        "title": row.title,
        "url": row.url,
        "status": row.status,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "received_at": iso(row.received_at),
        "event_id": row.event_id,
        "raw_ref": row.raw_ref,
    }

"""``dd0c-alert redact-stored``: take credentials out of what older versions stored.

Since admission redacts (``providers.redact``), nothing new needs this. What came
before may hold PagerDuty Events v2 routing keys and credential headers in dead
letters and archived raw payloads. For each tenant this rewrites:

- **dead letters**: body and headers, as admission would have stored them, with a
  ``x-dd0c-redacted`` note; the integration secrets searched for are the tenant's
  current ones (a routing key is redacted whatever its value);
- **archive files or objects** (the local folder or S3): segments and claim-checked
  bodies. Payloads in a segment are addressed ``key#offset:length`` from alerts,
  deploys and queue rows, so each keeps its exact length: a redacted string is padded
  with spaces (JSON whitespace) up to the bytes the secret took, so every stored
  reference stays valid and every payload stays valid JSON;
- **pgmq's archive** of dead-lettered messages (PostgreSQL): the body and headers in
  each message.

On SQLite the database is vacuumed and its WAL truncated afterwards, so the old bytes
do not linger in free pages; on PostgreSQL dead row versions remain until its own
VACUUM (see SECURITY.md).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson
import sqlalchemy as sa

from dd0c_alert.providers import PROVIDERS
from dd0c_alert.providers.redact import (
    NOTE_HEADER,
    PAGERDUTY_FIELDS,
    redact_body,
    redact_headers,
)
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.ports import Archive, Store
from dd0c_alert.storage.tenancy import scoped


@dataclass(slots=True)
class RedactionReport:
    dead_letters: int = 0
    archive_files: int = 0
    files_scanned: int = 0
    notes: list[str] = field(default_factory=list)


def redact_stored(
    store: Store,
    engine: sa.Engine,
    archive: Archive,
    tenant_ids: list[str],
    *,
    dry_run: bool = False,
) -> RedactionReport:
    """Rewrite the stored dead letters and archive files of ``tenant_ids``."""
    report = RedactionReport()
    for tenant_id in tenant_ids:
        secrets = [
            integration.secret
            for provider in PROVIDERS
            for integration in store.integrations_for(tenant_id, provider)
        ]
        report.dead_letters += _dead_letters(engine, tenant_id, secrets, dry_run)
        report.dead_letters += _pgmq_archive(engine, tenant_id, secrets, dry_run)
        changed, scanned = _archive(archive, tenant_id, secrets, dry_run)
        report.archive_files += changed
        report.files_scanned += scanned
    if not dry_run and engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # the engine's listeners begin transactions
        try:
            sqlite = raw.driver_connection
            assert sqlite is not None
            sqlite.commit()
            sqlite.execute("VACUUM")
            sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    return report


def _dead_letters(engine: sa.Engine, tenant_id: str, secrets: list[str], dry_run: bool) -> int:
    dl = t.dead_letters
    changed = 0
    with scoped(engine, tenant_id) as conn:
        rows = conn.execute(
            sa.select(dl.c.id, dl.c.provider, dl.c.headers, dl.c.body).where(
                dl.c.tenant_id == tenant_id
            )
        ).all()
        for row in rows:
            fields = PAGERDUTY_FIELDS if row.provider == "pagerduty-events" else frozenset()
            body, names = (None, []) if row.body is None else redact_body(row.body, secrets, fields)
            headers = orjson.loads(row.headers)
            note = headers.pop(NOTE_HEADER, "")
            kept, dropped = redact_headers(headers, secrets)
            if not names and not dropped:
                continue
            parts = [note] if note else []
            parts += [f"body:{n}" for n in names] + [f"header:{n}" for n in dropped]
            kept[NOTE_HEADER] = ", ".join(parts)
            changed += 1
            if dry_run:
                continue
            values: dict[str, object] = {"headers": orjson.dumps(kept).decode()}
            if names:
                values["body"] = body
            conn.execute(sa.update(dl).where(dl.c.id == row.id).values(**values))
    return changed


def _archive(
    archive: Archive, tenant_id: str, secrets: list[str], dry_run: bool
) -> tuple[int, int]:
    """Changed and scanned files (or objects) of the tenant's archive."""
    changed = scanned = 0
    for key in archive.keys(tenant_id):
        scanned += 1
        data = archive.get(key)
        # Only Events v2 bodies carry a top-level routing_key, so it is safe to look for
        # it in every payload; segments hold whole JSON texts back to back.
        new, names = redact_body(data, secrets, PAGERDUTY_FIELDS, same_length=True)
        if not names:
            continue
        if len(new) != len(data):
            raise RuntimeError(f"redacting {key} changed its length: refusing to write it")
        changed += 1
        if not dry_run:
            archive.put(key, new, durable=True)
    return changed, scanned


_PGMQ_ARCHIVE = sa.text(
    "SELECT msg_id, message FROM pgmq.a_dd0c_ingest WHERE message->>'tenant_id' = :tenant"
)
_PGMQ_REWRITE = sa.text(
    "UPDATE pgmq.a_dd0c_ingest SET message = CAST(:message AS jsonb) WHERE msg_id = :id"
)


def _pgmq_archive(engine: sa.Engine, tenant_id: str, secrets: list[str], dry_run: bool) -> int:
    """Messages of dead-lettered events kept in pgmq's archive table (PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        return 0
    changed = 0
    with engine.begin() as conn:
        for msg_id, message in conn.execute(_PGMQ_ARCHIVE, {"tenant": tenant_id}).all():
            fields = PAGERDUTY_FIELDS if message.get("provider") == "pagerduty-events" else None
            body = base64.b64decode(message["body"]) if message.get("body") else None
            new_body, names = (
                (None, []) if body is None else redact_body(body, secrets, fields or frozenset())
            )
            kept, dropped = redact_headers(dict(message.get("headers") or {}), secrets)
            if not names and not dropped:
                continue
            changed += 1
            if dry_run:
                continue
            note = [f"body:{n}" for n in names] + [f"header:{n}" for n in dropped]
            kept[NOTE_HEADER] = ", ".join(note)
            rewritten = {**message, "headers": kept}
            if names and new_body is not None:
                rewritten["body"] = base64.b64encode(new_body).decode()
            conn.execute(_PGMQ_REWRITE, {"message": orjson.dumps(rewritten).decode(), "id": msg_id})
    return changed

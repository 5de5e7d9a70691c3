"""The tenant's human-made rules as the REST API reads and changes them: silences and
inhibition rules. ``SqlStore`` delegates here; every query is scoped by tenant, in its
``WHERE`` and (PostgreSQL) by row-level security.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from dd0c_alert.correlation.model import InhibitRule, Silence
from dd0c_alert.correlation.rules import format_matchers, parse_matchers, silence_active

from . import schema as t
from .ports import RuleKind
from .rows import iso
from .tenancy import scoped


def _silence_dict(row: Any, now: datetime) -> dict[str, Any]:
    silence = Silence(
        id=row.id,
        matchers=parse_matchers(row.matchers, stored=True),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        schedule=row.schedule,
    )
    return {
        "id": row.id,
        "matchers": row.matchers,
        "starts_at": iso(row.starts_at),
        "ends_at": iso(row.ends_at),
        "schedule": row.schedule,
        "author": row.author,
        "comment": row.comment,
        "created_at": iso(row.created_at),
        "active": silence_active(silence, now),
    }


def list_silences(read: sa.Engine, tenant_id: str) -> list[dict[str, Any]]:
    s = t.silences
    with scoped(read, tenant_id) as conn:
        rows = conn.execute(
            sa.select(s).where(s.c.tenant_id == tenant_id).order_by(s.c.id.desc())
        ).all()
    now = datetime.now(UTC)
    return [_silence_dict(row, now) for row in rows]


def silence_columns(silence: Silence) -> dict[str, Any]:
    """What a person sets of a silence, as stored (a new one or a replacement)."""
    return {
        "matchers": format_matchers(silence.matchers),
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "schedule": silence.schedule,
        "author": silence.author,
        "comment": silence.comment,
    }


def create_silence(write: sa.Engine, tenant_id: str, silence: Silence) -> dict[str, Any]:
    s = t.silences
    now = datetime.now(UTC)
    with scoped(write, tenant_id) as conn:
        conn.execute(
            s.insert().values(
                id=silence.id, tenant_id=tenant_id, created_at=now, **silence_columns(silence)
            )
        )
        row = conn.execute(sa.select(s).where(s.c.id == silence.id)).one()
    return _silence_dict(row, now)


def update_silence(write: sa.Engine, tenant_id: str, silence: Silence) -> dict[str, Any] | None:
    """Replace the tenant's silence ``silence.id`` (its creation time stays); None when
    the tenant has no such silence."""
    s = t.silences
    with scoped(write, tenant_id) as conn:
        changed = conn.execute(
            s.update()
            .where(s.c.tenant_id == tenant_id, s.c.id == silence.id)
            .values(**silence_columns(silence))
        ).rowcount
        if not changed:
            return None
        row = conn.execute(sa.select(s).where(s.c.id == silence.id)).one()
    return _silence_dict(row, datetime.now(UTC))


def _inhibition_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "source": row.source,
        "target": row.target,
        "equal": list(row.equal),
        "created_at": iso(row.created_at),
    }


def list_inhibitions(read: sa.Engine, tenant_id: str) -> list[dict[str, Any]]:
    r = t.inhibit_rules
    with scoped(read, tenant_id) as conn:
        rows = conn.execute(
            sa.select(r).where(r.c.tenant_id == tenant_id).order_by(r.c.id.desc())
        ).all()
    return [_inhibition_dict(row) for row in rows]


def create_inhibition(write: sa.Engine, tenant_id: str, rule: InhibitRule) -> dict[str, Any]:
    r = t.inhibit_rules
    with scoped(write, tenant_id) as conn:
        conn.execute(
            r.insert().values(
                id=rule.id,
                tenant_id=tenant_id,
                source=format_matchers(rule.source),
                target=format_matchers(rule.target),
                equal=list(rule.equal),
                created_at=datetime.now(UTC),
            )
        )
        row = conn.execute(sa.select(r).where(r.c.id == rule.id)).one()
    return _inhibition_dict(row)


def update_inhibition(write: sa.Engine, tenant_id: str, rule: InhibitRule) -> dict[str, Any] | None:
    """Replace the matchers and ``equal`` labels of the tenant's rule ``rule.id``
    (its creation time stays); None when the tenant has no such rule."""
    r = t.inhibit_rules
    with scoped(write, tenant_id) as conn:
        changed = conn.execute(
            r.update()
            .where(r.c.tenant_id == tenant_id, r.c.id == rule.id)
            .values(
                source=format_matchers(rule.source),
                target=format_matchers(rule.target),
                equal=list(rule.equal),
            )
        ).rowcount
        if not changed:
            return None
        row = conn.execute(sa.select(r).where(r.c.id == rule.id)).one()
    return _inhibition_dict(row)


def delete_rule(write: sa.Engine, tenant_id: str, kind: RuleKind, rule_id: str) -> bool:
    """Remove one of the tenant's silences or inhibition rules; False when it has none
    with that id. Decisions already taken keep naming the rule."""
    table = t.silences if kind == "silence" else t.inhibit_rules
    with scoped(write, tenant_id) as conn:
        gone = conn.execute(
            table.delete().where(table.c.tenant_id == tenant_id, table.c.id == rule_id)
        ).rowcount
    return bool(gone)

"""A tenant's notification settings in SQL: its routes and its Slack workspace.

Both hold secrets (a webhook destination's signing secret, the bot token and the
signing secret), kept encrypted by the secret box and decrypted only for whoever
sends or verifies: the API shows routes as stored, and Slack settings never with
their secrets. The notifier reads them through its outbox (``storage/outbox.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from dd0c_alert.domain.ids import new_id

from . import schema as t
from .secrets import SecretBox
from .tenancy import scoped

_TENANTS_FOR_TEAM = sa.text("SELECT * FROM dd0c_tenants_for_slack_team(:team)")


class SqlNotifySettings:
    """Routes (in evaluation order) and Slack settings, secrets encrypted at rest."""

    def __init__(self, engine: sa.Engine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box

    # --- routes -----------------------------------------------------------------------

    def list_routes(self, tenant_id: str) -> list[dict[str, Any]]:
        """Routes in evaluation order, as stored (webhook secrets encrypted)."""
        r = t.routes
        with scoped(self._engine, tenant_id) as conn:
            rows = conn.execute(
                sa.select(r).where(r.c.tenant_id == tenant_id).order_by(r.c.position, r.c.id)
            ).all()
        return [{"id": x.id, **dict(x.definition)} for x in rows]

    def routes_for_sending(self, tenant_id: str) -> list[dict[str, Any]]:
        """Routes with their webhook secrets decrypted, for the notifier only."""
        return [self._reveal(route) for route in self.list_routes(tenant_id)]

    def save_route(
        self, tenant_id: str, definition: dict[str, Any], route_id: str | None = None
    ) -> dict[str, Any] | None:
        """Create (at the end of the order) or replace a route; ``None`` when replacing
        one the tenant does not have."""
        r = t.routes
        now = datetime.now(UTC)
        stored = self._conceal(definition)
        with scoped(self._engine, tenant_id) as conn:
            if route_id is None:
                route_id = new_id()
                last = conn.execute(
                    sa.select(sa.func.max(r.c.position)).where(r.c.tenant_id == tenant_id)
                ).scalar()
                conn.execute(
                    r.insert().values(
                        id=route_id,
                        tenant_id=tenant_id,
                        position=(last or 0) + 1,
                        name=str(definition.get("name", "")),
                        definition=stored,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                changed = conn.execute(
                    r.update()
                    .where(r.c.tenant_id == tenant_id, r.c.id == route_id)
                    .values(name=str(definition.get("name", "")), definition=stored, updated_at=now)
                ).rowcount
                if not changed:
                    return None
        return {"id": route_id, **stored}

    def reorder_routes(self, tenant_id: str, route_ids: Sequence[str]) -> str | None:
        """Put the tenant's routes in the order of ``route_ids``, which must name each
        of them once; else nothing changes and the answer says what differs (a route
        added or deleted since the caller read the list)."""
        r = t.routes
        with scoped(self._engine, tenant_id) as conn:
            stored = set(
                conn.execute(
                    sa.select(r.c.id).where(r.c.tenant_id == tenant_id).with_for_update()
                ).scalars()
            )
            given = list(route_ids)
            repeated = sorted(i for i, n in Counter(given).items() if n > 1)
            missing, unknown = sorted(stored - set(given)), sorted(set(given) - stored)
            problems = [
                f"{what}: {', '.join(ids[:5])}{'…' if len(ids) > 5 else ''}"
                for what, ids in (
                    ("named twice", repeated),
                    ("missing", missing),
                    ("no such route", unknown),
                )
                if ids
            ]
            if problems:
                return "the order must name every route once; " + "; ".join(problems)
            for position, route_id in enumerate(given, 1):
                conn.execute(
                    r.update()
                    .where(r.c.tenant_id == tenant_id, r.c.id == route_id)
                    .values(position=position)
                )
        return None

    def delete_route(self, tenant_id: str, route_id: str) -> bool:
        r = t.routes
        with scoped(self._engine, tenant_id) as conn:
            return bool(
                conn.execute(
                    r.delete().where(r.c.tenant_id == tenant_id, r.c.id == route_id)
                ).rowcount
            )

    def _conceal(self, definition: dict[str, Any]) -> dict[str, Any]:
        return map_webhook_secrets(definition, self._box.encrypt, "secret", "secret_encrypted")

    def _reveal(self, definition: dict[str, Any]) -> dict[str, Any]:
        return map_webhook_secrets(definition, self._box.decrypt, "secret_encrypted", "secret")

    # --- Slack settings ---------------------------------------------------------------

    def put_slack(
        self,
        tenant_id: str,
        *,
        bot_token: str,
        signing_secret: str,
        default_channel: str,
        team_id: str | None = None,
    ) -> None:
        s = t.slack_settings
        values = {
            "bot_token_encrypted": self._box.encrypt(bot_token),
            "signing_secret_encrypted": self._box.encrypt(signing_secret),
            "default_channel": default_channel,
            "team_id": team_id,
            "updated_at": datetime.now(UTC),
        }
        with scoped(self._engine, tenant_id) as conn:
            changed = conn.execute(
                s.update().where(s.c.tenant_id == tenant_id).values(values)
            ).rowcount
            if not changed:
                conn.execute(s.insert().values(tenant_id=tenant_id, **values))

    def tenants_for_slack_team(self, team_id: str) -> list[str]:
        """Tenants whose Slack settings name this workspace (or name none yet): the
        candidates whose signing secrets an interaction is checked against."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                return list(conn.execute(_TENANTS_FOR_TEAM, {"team": team_id}).scalars())
            s = t.slack_settings
            query = (
                sa.select(s.c.tenant_id)
                .where(sa.or_(s.c.team_id == team_id, s.c.team_id.is_(None)))
                .order_by(s.c.tenant_id)
            )
            return list(conn.execute(query).scalars())

    def slack(self, tenant_id: str) -> SlackSettings | None:
        s = t.slack_settings
        with scoped(self._engine, tenant_id) as conn:
            row = conn.execute(sa.select(s).where(s.c.tenant_id == tenant_id)).first()
        if row is None:
            return None
        return SlackSettings(
            bot_token=self._box.decrypt(row.bot_token_encrypted),
            signing_secret=self._box.decrypt(row.signing_secret_encrypted),
            default_channel=row.default_channel,
            team_id=row.team_id,
        )


@dataclass(frozen=True, slots=True)
class SlackSettings:
    bot_token: str
    signing_secret: str
    default_channel: str
    team_id: str | None

    def __repr__(self) -> str:  # never the token or the signing secret
        return f"SlackSettings(default_channel={self.default_channel!r}, team_id={self.team_id!r})"


def map_webhook_secrets(
    definition: dict[str, Any], change: Any, old: str, new: str
) -> dict[str, Any]:
    """The route document with each webhook destination's ``old`` key turned into
    ``new`` by ``change`` (encrypt on the way in, decrypt on the way out)."""

    def fix(destinations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for given in destinations:
            dest = dict(given)
            if dest.get("type") == "webhook" and old in dest:
                dest[new] = change(dest.pop(old))
            out.append(dest)
        return out

    result = dict(definition)
    result["destinations"] = fix(list(result.get("destinations", [])))
    if isinstance(result.get("escalation"), dict):
        escalation = dict(result["escalation"])
        escalation["destinations"] = fix(list(escalation.get("destinations", [])))
        result["escalation"] = escalation
    return result

"""Every stored secret encrypted again with the secret key's first key.

Changing ``DD0C_SECRET_KEY`` (a leaked key, a departing operator) goes: put the new key
in front of the old one (``new,old``) on every process, run this, then drop the old
key. Each tenant's secrets change in one transaction of their own, scoped to the
tenant as row-level security asks; a secret already under the first key is written
again all the same (Fernet cannot tell which key made a token without trying each).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from . import schema as t
from .notify_settings import map_webhook_secrets
from .secrets import SecretBox
from .tenancy import scoped

#: Encrypted columns of rows keyed by ``id``.
_COLUMNS = {
    t.integrations: ("secret_encrypted", "previous_secret_encrypted"),
    t.slack_settings: ("bot_token_encrypted", "signing_secret_encrypted"),
}


def reencrypt_secrets(engine: sa.Engine, box: SecretBox, tenant_ids: Iterable[str]) -> int:
    """Re-encrypt the secrets of these tenants with ``box``'s first key; how many.
    ``InvalidToken`` (nothing of that tenant changed) if a secret is under none of the
    box's keys."""
    changed = 0
    for tenant_id in tenant_ids:
        with scoped(engine, tenant_id) as conn:
            changed += _rows(conn, box, tenant_id) + _routes(conn, box, tenant_id)
    return changed


def _rows(conn: sa.Connection, box: SecretBox, tenant_id: str) -> int:
    changed = 0
    for table, columns in _COLUMNS.items():
        key = table.c.tenant_id if table is t.slack_settings else table.c.id
        found = conn.execute(
            sa.select(key.label("key"), *(table.c[c] for c in columns)).where(
                table.c.tenant_id == tenant_id
            )
        ).all()
        for row in found:
            values = {c: box.reencrypt(row._mapping[c]) for c in columns if row._mapping[c]}
            conn.execute(table.update().where(key == row.key).values(values))
            changed += len(values)
    return changed


def _routes(conn: sa.Connection, box: SecretBox, tenant_id: str) -> int:
    r = t.routes
    tokens: list[str] = []

    def again(token: Any) -> str:
        tokens.append(str(token))
        return box.reencrypt(str(token))

    rows = conn.execute(sa.select(r.c.id, r.c.definition).where(r.c.tenant_id == tenant_id))
    for route_id, definition in rows.all():
        before = len(tokens)
        document = map_webhook_secrets(
            dict(definition), again, "secret_encrypted", "secret_encrypted"
        )
        if len(tokens) > before:
            conn.execute(r.update().where(r.c.id == route_id).values(definition=document))
    return len(tokens)

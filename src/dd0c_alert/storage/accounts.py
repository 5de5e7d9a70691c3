"""Accounts in SQL: users, memberships, refresh tokens, invitations, password resets
and API keys.

Every secret handed out (API key, refresh token, invitation and reset link) carries
256 random bits and is stored as its SHA-256 digest only. Passwords are hashed by
the caller (argon2id, ``web.passwords``); this module stores what it is given.

On PostgreSQL, tenant rows are read in a transaction scoped to their tenant; the
lookups that start from a secret or an email (before the tenant is known) go through
the security-definer functions of migration 0008, which answer ids only.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dd0c_alert.domain.ids import new_id

from . import schema as t
from .account_rows import (
    API_KEY_PREFIX,
    INVITATION_PREFIX,
    REFRESH_PREFIX,
    RESET_PREFIX,
    ApiKey,
    EmailTaken,
    Invitation,
    LastOwner,
    Member,
    RefreshToken,
    Revoked,
    Rotation,
    User,
    api_key_of,
    digest,
    invitation_of,
    normalise_email,
    user_of,
)
from .ports import Tenant
from .tenancy import scope, scope_user

#: How long a rotated refresh token may be presented again for another token of its
#: family, rather than be taken for a stolen copy (``rotate_refresh``). Okta's
#: rotation grace period serves the same purpose; a thief must use the token within
#: these seconds of its owner and before any logout.
ROTATION_GRACE = timedelta(seconds=10)


def _now() -> datetime:
    return datetime.now(UTC)


def _withdraw_invitations_of(
    conn: sa.Connection, tenant_id: str, user_id: str, keep_roles: Collection[str]
) -> list[str]:
    """Delete the pending invitations ``user_id`` made for a role not in ``keep_roles``
    (as ``revoke_invitation`` does: their links are then unknown); their ids. A
    removed admin's invitation, accepted under another address of theirs, brought
    them back."""
    inv = t.invitations
    theirs = sa.and_(
        inv.c.tenant_id == tenant_id,
        inv.c.invited_by_user == user_id,
        inv.c.accepted_at.is_(None),
        inv.c.role.not_in(list(keep_roles)),
    )
    ids = list(conn.execute(sa.select(inv.c.id).where(theirs).order_by(inv.c.id)).scalars())
    if ids:
        conn.execute(inv.delete().where(theirs, inv.c.id.in_(ids)))
    return ids


class AccountStore:
    def __init__(self, engine: sa.Engine, read_engine: sa.Engine) -> None:
        self._engine = engine
        self._read = read_engine

    @contextmanager
    def _tx(
        self, *, tenant_id: str | None = None, user_id: str | None = None, write: bool = True
    ) -> Iterator[sa.Connection]:
        with (self._engine if write else self._read).begin() as conn:
            if tenant_id is not None:
                scope(conn, tenant_id)
            if user_id is not None:
                scope_user(conn, user_id)
            yield conn

    @staticmethod
    def _definer(conn: sa.Connection, function: str, arg: str) -> str | None:
        """A cross-tenant lookup: the definer function on PostgreSQL, plain SQL here."""
        value: str | None = conn.execute(sa.select(getattr(sa.func, function)(arg))).scalar()
        return value

    @staticmethod
    def _rls(conn: sa.Connection) -> bool:
        return conn.dialect.name == "postgresql"

    # --- users -------------------------------------------------------------------------

    def _user_id_for_email(self, conn: sa.Connection, email: str) -> str | None:
        if self._rls(conn):
            return self._definer(conn, "dd0c_user_for_email", email)
        found: str | None = conn.execute(
            sa.select(t.users.c.id).where(t.users.c.email == email)
        ).scalar()
        return found

    def _insert_user(self, conn: sa.Connection, email: str, password_hash: str | None) -> User:
        user = User(
            id=new_id(),
            email=normalise_email(email),
            password_hash=password_hash,
            created_at=_now(),
            disabled=False,
        )
        if self._user_id_for_email(conn, user.email) is not None:
            raise EmailTaken(user.email)
        scope_user(conn, user.id)
        try:
            with conn.begin_nested():
                conn.execute(
                    t.users.insert().values(
                        id=user.id,
                        email=user.email,
                        password_hash=password_hash,
                        created_at=user.created_at,
                        disabled=False,
                    )
                )
        except sa.exc.IntegrityError:
            raise EmailTaken(user.email) from None
        return user

    def signup(self, tenant_name: str, email: str, password_hash: str) -> tuple[Tenant, User]:
        """A new tenant, a new user, and the user its owner: one transaction."""
        tenant = Tenant(id=new_id(), name=tenant_name, created_at=_now())
        with self._tx(tenant_id=tenant.id) as conn:
            user = self._insert_user(conn, email, password_hash)
            conn.execute(
                t.tenants.insert().values(
                    id=tenant.id, name=tenant_name, created_at=tenant.created_at
                )
            )
            self._add_member(conn, tenant.id, user.id, "owner")
        return tenant, user

    def create_user(self, email: str, password_hash: str | None) -> User:
        with self._tx() as conn:
            return self._insert_user(conn, email, password_hash)

    def user_by_email(self, email: str) -> User | None:
        with self._tx(write=False) as conn:
            user_id = self._user_id_for_email(conn, normalise_email(email))
            if user_id is None:
                return None
            return self._get_user(conn, user_id)

    def _get_user(self, conn: sa.Connection, user_id: str) -> User | None:
        scope_user(conn, user_id)
        row = conn.execute(sa.select(t.users).where(t.users.c.id == user_id)).first()
        return None if row is None else user_of(row)

    def get_user(self, user_id: str) -> User | None:
        with self._tx(write=False) as conn:
            return self._get_user(conn, user_id)

    def set_password(self, user_id: str, password_hash: str) -> None:
        """A new password; every refresh token of the user, in every tenant, revoked,
        and every open reset link spent: one asked for earlier must not replace the
        password chosen since."""
        now = _now()
        pr = t.password_resets
        with self._tx(user_id=user_id) as conn:
            conn.execute(
                t.users.update()
                .where(t.users.c.id == user_id)
                .values(password_hash=password_hash, password_changed_at=now)
            )
            conn.execute(
                pr.update()
                .where(pr.c.user_id == user_id, pr.c.used_at.is_(None))
                .values(used_at=now)
            )
            for tenant_id in self._tenant_ids_of(conn, user_id):
                scope(conn, tenant_id)
                self._revoke_where(conn, t.refresh_tokens.c.user_id == user_id, tenant_id, now)

    def set_disabled(self, user_id: str, disabled: bool) -> None:
        with self._tx(user_id=user_id) as conn:
            conn.execute(t.users.update().where(t.users.c.id == user_id).values(disabled=disabled))

    # --- memberships -------------------------------------------------------------------

    def _add_member(self, conn: sa.Connection, tenant_id: str, user_id: str, role: str) -> None:
        conn.execute(
            t.memberships.insert().values(
                tenant_id=tenant_id, user_id=user_id, role=role, created_at=_now()
            )
        )

    def add_member(self, tenant_id: str, user_id: str, role: str) -> bool:
        """False when the user is a member already (their role is left as it is)."""
        with self._tx(tenant_id=tenant_id) as conn:
            exists = conn.execute(
                sa.select(t.memberships.c.role).where(
                    t.memberships.c.tenant_id == tenant_id, t.memberships.c.user_id == user_id
                )
            ).first()
            if exists is not None:
                return False
            self._add_member(conn, tenant_id, user_id, role)
        return True

    def _members_query(self, tenant_id: str) -> sa.Select[Any]:
        m, u = t.memberships, t.users
        return (
            sa.select(m.c.tenant_id, m.c.user_id, u.c.email, m.c.role, m.c.created_at, u.c.disabled)
            .join(u, u.c.id == m.c.user_id)
            .where(m.c.tenant_id == tenant_id)
        )

    def member(self, tenant_id: str, user_id: str) -> Member | None:
        """The user's membership of the tenant; None if there is none."""
        with self._tx(tenant_id=tenant_id, write=False) as conn:
            row = conn.execute(
                self._members_query(tenant_id).where(t.memberships.c.user_id == user_id)
            ).first()
        return None if row is None else Member(**row._asdict())

    def members(self, tenant_id: str) -> list[Member]:
        with self._tx(tenant_id=tenant_id, write=False) as conn:
            rows = conn.execute(
                self._members_query(tenant_id).order_by(t.memberships.c.created_at)
            ).all()
        return [Member(**row._asdict()) for row in rows]

    def set_role(
        self,
        tenant_id: str,
        user_id: str,
        role: str,
        keep_scopes: Collection[str],
        keep_invitations: Collection[str] = (),
    ) -> Revoked | None:
        """The member's new role, the API keys they made revoked unless their scope is
        in ``keep_scopes`` and their pending invitations withdrawn unless their role is
        in ``keep_invitations`` (what the new role may still make and grant): one
        transaction. What it revoked; None when the user is no member. ``LastOwner``
        when it would demote the tenant's last owner."""
        m = t.memberships
        with self._tx(tenant_id=tenant_id) as conn:
            if self._guard_last_owner(conn, tenant_id, user_id, role) is None:
                return None
            conn.execute(
                m.update()
                .where(m.c.tenant_id == tenant_id, m.c.user_id == user_id)
                .values(role=role)
            )
            return Revoked(
                self._revoke_keys_of(conn, tenant_id, user_id, keep_scopes, _now()),
                _withdraw_invitations_of(conn, tenant_id, user_id, keep_invitations),
            )

    def remove_member(self, tenant_id: str, user_id: str) -> Revoked | None:
        """The membership gone, the user's refresh tokens in the tenant and every API
        key they made revoked, their pending invitations withdrawn: one transaction.
        What it revoked; None when the user is no member. ``LastOwner`` when it would
        remove the last owner."""
        m = t.memberships
        now = _now()
        with self._tx(tenant_id=tenant_id) as conn:
            if self._guard_last_owner(conn, tenant_id, user_id, None) is None:
                return None
            conn.execute(m.delete().where(m.c.tenant_id == tenant_id, m.c.user_id == user_id))
            self._revoke_where(conn, t.refresh_tokens.c.user_id == user_id, tenant_id, now)
            return Revoked(
                self._revoke_keys_of(conn, tenant_id, user_id, (), now),
                _withdraw_invitations_of(conn, tenant_id, user_id, ()),
            )

    def _guard_last_owner(
        self, conn: sa.Connection, tenant_id: str, user_id: str, new_role: str | None
    ) -> str | None:
        """The member's role as it stands, in the transaction that changes it (None:
        no member); ``LastOwner`` when the change (``new_role`` None: removal) would
        leave no owner. The tenant's owner rows are locked first, in one order, so
        two owners demoting each other at once queue on PostgreSQL, and the second
        sees the first's change; SQLite's write transactions queue whole."""
        m = t.memberships
        owners = set(
            conn.execute(
                sa.select(m.c.user_id)
                .where(m.c.tenant_id == tenant_id, m.c.role == "owner")
                .order_by(m.c.user_id)
                .with_for_update()
            ).scalars()
        )
        role: str | None = conn.execute(
            sa.select(m.c.role)
            .where(m.c.tenant_id == tenant_id, m.c.user_id == user_id)
            .with_for_update()
        ).scalar()
        if role == "owner" and new_role != "owner" and not owners - {user_id}:
            raise LastOwner(tenant_id)
        return role

    def _revoke_keys_of(
        self,
        conn: sa.Connection,
        tenant_id: str,
        user_id: str,
        keep_scopes: Collection[str],
        now: datetime,
    ) -> list[str]:
        """Revoke the unrevoked keys ``user_id`` made whose scope is not kept; their ids."""
        k = t.api_keys
        mine = sa.and_(
            k.c.tenant_id == tenant_id,
            k.c.created_by == user_id,
            k.c.revoked_at.is_(None),
            k.c.scope.not_in(list(keep_scopes)),
        )
        ids = list(conn.execute(sa.select(k.c.id).where(mine).order_by(k.c.id)).scalars())
        if ids:
            conn.execute(k.update().where(mine, k.c.id.in_(ids)).values(revoked_at=now))
        return ids

    def _tenant_ids_of(self, conn: sa.Connection, user_id: str) -> list[str]:
        if self._rls(conn):
            return list(conn.execute(sa.select(sa.func.dd0c_tenants_for_user(user_id))).scalars())
        m = t.memberships
        return list(
            conn.execute(
                sa.select(m.c.tenant_id)
                .where(m.c.user_id == user_id)
                .order_by(m.c.created_at, m.c.tenant_id)
            ).scalars()
        )

    def tenants_of(self, user_id: str) -> list[dict[str, Any]]:
        """The tenants the user belongs to, oldest membership first:
        ``{"tenant_id", "name", "role"}``."""
        found: list[dict[str, Any]] = []
        with self._tx(write=False) as conn:
            for tenant_id in self._tenant_ids_of(conn, user_id):
                scope(conn, tenant_id)
                row = conn.execute(
                    sa.select(t.tenants.c.name, t.memberships.c.role)
                    .join(t.memberships, t.memberships.c.tenant_id == t.tenants.c.id)
                    .where(t.tenants.c.id == tenant_id, t.memberships.c.user_id == user_id)
                ).first()
                if row is not None:
                    found.append({"tenant_id": tenant_id, "name": row.name, "role": row.role})
        return found

    # --- refresh tokens ----------------------------------------------------------------

    def issue_refresh(
        self,
        tenant_id: str,
        user_id: str,
        ttl: timedelta,
        family_id: str | None = None,
        conn: sa.Connection | None = None,
    ) -> RefreshToken:
        """A new refresh token, in ``family_id`` or else a new family (a new session)."""
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        token_id = new_id()
        family_id = family_id or new_id()
        now = _now()
        values = {
            "id": token_id,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "family_id": family_id,
            "token_hash": digest(token),
            "created_at": now,
            "expires_at": now + ttl,
        }
        if conn is not None:
            conn.execute(t.refresh_tokens.insert().values(**values))
        else:
            with self._tx(tenant_id=tenant_id) as own:
                own.execute(t.refresh_tokens.insert().values(**values))
        return RefreshToken(token, token_id, family_id)

    def _token_tenant(self, conn: sa.Connection, function: str, table: sa.Table, token: str) -> Any:
        token_hash = digest(token)
        if self._rls(conn):
            tenant_id = self._definer(conn, function, token_hash)
            if tenant_id is None:
                return None
            scope(conn, tenant_id)
        return conn.execute(
            sa.select(table).where(table.c.token_hash == token_hash).with_for_update()
        ).first()

    def _revoke_where(
        self, conn: sa.Connection, condition: Any, tenant_id: str, now: datetime
    ) -> None:
        rt = t.refresh_tokens
        conn.execute(
            rt.update()
            .where(rt.c.tenant_id == tenant_id, rt.c.revoked_at.is_(None), condition)
            .values(revoked_at=now)
        )

    def rotate_refresh(self, token: str, ttl: timedelta) -> Rotation:
        """Spend a refresh token for a new one in the same family. A token spent or
        revoked before, presented again, revokes its whole family (a stolen copy is
        in use): ``reused``; except a token rotated less than ``ROTATION_GRACE`` ago
        in a family still signed in, which gets a new token of the family too."""
        now = _now()
        with self._tx() as conn:
            row = self._token_tenant(conn, "dd0c_tenant_for_refresh_token", t.refresh_tokens, token)
            if row is None:
                return Rotation("invalid")
            if self._just_rotated(conn, row, now):
                issued = self.issue_refresh(row.tenant_id, row.user_id, ttl, row.family_id, conn)
                return Rotation("ok", row.tenant_id, row.user_id, issued.token, row.family_id)
            if row.revoked_at is not None:
                self._revoke_where(
                    conn, t.refresh_tokens.c.family_id == row.family_id, row.tenant_id, now
                )
                return Rotation("reused", row.tenant_id, row.user_id)
            if row.expires_at <= now:
                return Rotation("invalid")
            issued = self.issue_refresh(row.tenant_id, row.user_id, ttl, row.family_id, conn)
            conn.execute(
                t.refresh_tokens.update()
                .where(t.refresh_tokens.c.id == row.id)
                .values(revoked_at=now, replaced_by=issued.id)
            )
        return Rotation("ok", row.tenant_id, row.user_id, issued.token, row.family_id)

    def _just_rotated(self, conn: sa.Connection, row: Any, now: datetime) -> bool:
        """Whether ``row`` was spent by a rotation within ``ROTATION_GRACE`` and its
        family still holds a live token (no logout, password change or detected reuse
        since). Two requests that renew one sign-in at once (two dashboard tabs, or a
        client that lost the answer and asks again) present the same token: the second
        revoked the whole sign-in as stolen and logged the person out."""
        if row.replaced_by is None or row.revoked_at is None:
            return False
        if now - row.revoked_at > ROTATION_GRACE:
            return False
        rt = t.refresh_tokens
        live = conn.execute(
            sa.select(rt.c.id)
            .where(
                rt.c.tenant_id == row.tenant_id,
                rt.c.family_id == row.family_id,
                rt.c.revoked_at.is_(None),
                rt.c.expires_at > now,
            )
            .limit(1)
        ).first()
        return live is not None

    def revoke_refresh(self, token: str) -> tuple[str, str] | None:
        """Logout: the token's whole family (this browser's session) revoked; its
        ``(tenant_id, family_id)``, None for an unknown token."""
        with self._tx() as conn:
            row = self._token_tenant(conn, "dd0c_tenant_for_refresh_token", t.refresh_tokens, token)
            if row is None:
                return None
            self._revoke_where(
                conn, t.refresh_tokens.c.family_id == row.family_id, row.tenant_id, _now()
            )
            return row.tenant_id, row.family_id

    def end_session(self, tenant_id: str, family_id: str) -> None:
        """Logout by an access token (its ``sid``): the sign-in's refresh tokens
        revoked, as ``revoke_refresh`` does for the refresh token's holder."""
        with self._tx(tenant_id=tenant_id) as conn:
            self._revoke_where(conn, t.refresh_tokens.c.family_id == family_id, tenant_id, _now())

    def session_alive(self, tenant_id: str, family_id: str) -> bool:
        """Whether a sign-in still holds a usable refresh token: logout, a password
        change and a detected token reuse revoke them all, and end the session's
        access tokens with them."""
        rt = t.refresh_tokens
        with self._tx(tenant_id=tenant_id, write=False) as conn:
            found = conn.execute(
                sa.select(rt.c.id)
                .where(
                    rt.c.tenant_id == tenant_id,
                    rt.c.family_id == family_id,
                    rt.c.revoked_at.is_(None),
                    rt.c.expires_at > _now(),
                )
                .limit(1)
            ).first()
        return found is not None

    # --- invitations -------------------------------------------------------------------

    def create_invitation(
        self,
        tenant_id: str,
        email: str,
        role: str,
        invited_by: str,
        ttl: timedelta,
        inviter: str | None = None,
    ) -> tuple[str, Invitation]:
        """A pending invitation and its token (shown once). ``inviter``: the user id
        of the person behind it (None for the command line's keys), whose removal or
        demotion withdraws it."""
        token = INVITATION_PREFIX + secrets.token_urlsafe(32)
        now = _now()
        invitation = Invitation(
            id=new_id(),
            tenant_id=tenant_id,
            email=normalise_email(email),
            role=role,
            invited_by=invited_by,
            created_at=now,
            expires_at=now + ttl,
            accepted_at=None,
        )
        with self._tx(tenant_id=tenant_id) as conn:
            conn.execute(
                t.invitations.insert().values(
                    id=invitation.id,
                    tenant_id=tenant_id,
                    email=invitation.email,
                    role=role,
                    token_hash=digest(token),
                    invited_by=invited_by,
                    invited_by_user=inviter,
                    created_at=now,
                    expires_at=invitation.expires_at,
                )
            )
        return token, invitation

    def invitations(self, tenant_id: str) -> list[Invitation]:
        inv = t.invitations
        with self._tx(tenant_id=tenant_id, write=False) as conn:
            rows = conn.execute(
                sa.select(inv).where(inv.c.tenant_id == tenant_id).order_by(inv.c.created_at)
            ).all()
        return [invitation_of(row) for row in rows]

    def revoke_invitation(self, tenant_id: str, invitation_id: str) -> bool:
        """Delete a pending invitation (expired or not): its token is then unknown, and
        acceptance refuses it as any unknown one. False when the tenant has no such
        invitation or it was accepted (what it did stays: remove the member instead);
        on PostgreSQL an acceptance running at once holds the row, and the delete then
        finds it accepted."""
        inv = t.invitations
        with self._tx(tenant_id=tenant_id) as conn:
            gone = conn.execute(
                inv.delete().where(
                    inv.c.tenant_id == tenant_id,
                    inv.c.id == invitation_id,
                    inv.c.accepted_at.is_(None),
                )
            ).rowcount
        return bool(gone)

    def accept_invitation(
        self, token: str, password_hash: str | None
    ) -> tuple[Invitation, User] | None:
        """Spend an open invitation: its user (created when new, with
        ``password_hash``) becomes a member. None when the token is unknown, spent or
        expired, or a new user would have no password (``ValueError``)."""
        now = _now()
        with self._tx() as conn:
            row = self._token_tenant(conn, "dd0c_tenant_for_invitation", t.invitations, token)
            if row is None or row.accepted_at is not None or row.expires_at <= now:
                return None
            invitation = invitation_of(row)
            user_id = self._user_id_for_email(conn, invitation.email)
            if user_id is None:
                if password_hash is None:
                    raise ValueError("a password is needed to create the account")
                user = self._insert_user(conn, invitation.email, password_hash)
            else:
                found = self._get_user(conn, user_id)
                assert found is not None
                user = found
            scope(conn, invitation.tenant_id)
            already = conn.execute(
                sa.select(t.memberships.c.role).where(
                    t.memberships.c.tenant_id == invitation.tenant_id,
                    t.memberships.c.user_id == user.id,
                )
            ).first()
            if already is None:
                self._add_member(conn, invitation.tenant_id, user.id, invitation.role)
            conn.execute(
                t.invitations.update()
                .where(t.invitations.c.id == invitation.id)
                .values(accepted_at=now)
            )
        return invitation, user

    # --- password resets ---------------------------------------------------------------

    def create_reset(self, user_id: str, ttl: timedelta) -> str:
        token = RESET_PREFIX + secrets.token_urlsafe(32)
        now = _now()
        with self._tx(user_id=user_id) as conn:
            conn.execute(
                t.password_resets.insert().values(
                    id=new_id(),
                    user_id=user_id,
                    token_hash=digest(token),
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return token

    def spend_reset(self, token: str) -> str | None:
        """The user id of an open reset link, now spent; None when unknown, used or
        expired."""
        token_hash = digest(token)
        pr = t.password_resets
        now = _now()
        with self._tx() as conn:
            if self._rls(conn):
                user_id = self._definer(conn, "dd0c_user_for_password_reset", token_hash)
                if user_id is None:
                    return None
                scope_user(conn, user_id)
            row = conn.execute(
                sa.select(pr).where(pr.c.token_hash == token_hash).with_for_update()
            ).first()
            if row is None or row.used_at is not None or row.expires_at <= now:
                return None
            conn.execute(pr.update().where(pr.c.id == row.id).values(used_at=now))
            user_id_: str = row.user_id
        return user_id_

    # --- API keys ----------------------------------------------------------------------

    def create_api_key(
        self,
        tenant_id: str,
        name: str,
        scope_: str,
        expires_at: datetime | None = None,
        created_by: str | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key, shown once; ``created_by`` the user making it, directly or with
        a key of theirs (None for the command line), whose removal or demotion
        revokes it."""
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            id=new_id(),
            tenant_id=tenant_id,
            name=name,
            scope=scope_,
            created_at=_now(),
            last_used_at=None,
            expires_at=expires_at,
            revoked_at=None,
            created_by=created_by,
        )
        with self._tx(tenant_id=tenant_id) as conn:
            conn.execute(
                t.api_keys.insert().values(
                    id=record.id,
                    tenant_id=tenant_id,
                    name=name,
                    key_hash=digest(key),
                    created_at=record.created_at,
                    scope=scope_,
                    expires_at=expires_at,
                    created_by=created_by,
                )
            )
        return key, record

    def api_keys(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys with their makers' emails (so an owner sees whose keys
        remain; a maker no longer in the team shows no email)."""
        k, m, u = t.api_keys, t.memberships, t.users
        member = sa.and_(m.c.tenant_id == k.c.tenant_id, m.c.user_id == k.c.created_by)
        with self._tx(tenant_id=tenant_id, write=False) as conn:
            rows = conn.execute(
                sa.select(k, u.c.email.label("created_by_email"))
                .outerjoin(m, member)
                .outerjoin(u, u.c.id == m.c.user_id)
                .where(k.c.tenant_id == tenant_id)
                .order_by(k.c.created_at)
            ).all()
        return [api_key_of(row) for row in rows]

    def revoke_api_key(self, tenant_id: str, key_id: str) -> bool | None:
        """True when this call revoked the key, False when it was revoked already,
        None when the tenant has no such key."""
        k = t.api_keys
        with self._tx(tenant_id=tenant_id) as conn:
            revoked = conn.execute(
                k.update()
                .where(k.c.tenant_id == tenant_id, k.c.id == key_id, k.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            ).rowcount
            row = conn.execute(
                sa.select(k.c.id).where(k.c.tenant_id == tenant_id, k.c.id == key_id)
            ).first()
        return None if row is None else bool(revoked)

    def api_key(self, key: str) -> ApiKey | None:
        """The stored key for a presented one, usable or not; None if unknown."""
        key_hash = digest(key)
        k = t.api_keys
        with self._tx(write=False) as conn:
            if self._rls(conn):
                tenant_id = self._definer(conn, "dd0c_tenant_for_api_key", key_hash)
                if tenant_id is None:
                    return None
                scope(conn, tenant_id)
            row = conn.execute(sa.select(k).where(k.c.key_hash == key_hash)).first()
        return None if row is None else api_key_of(row)

    def touch_api_key(self, tenant_id: str, key_id: str, at: datetime) -> None:
        k = t.api_keys
        with self._tx(tenant_id=tenant_id) as conn:
            conn.execute(
                k.update()
                .where(k.c.tenant_id == tenant_id, k.c.id == key_id)
                .values(last_used_at=at)
            )

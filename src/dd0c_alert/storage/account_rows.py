"""The account rows as values (users, members, API keys, invitations, a refresh
token's rotation), the secret prefixes and the digest secrets are stored as: what the
store (``accounts.py``) returns and the web layer reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

API_KEY_PREFIX = "dd0c_"
REFRESH_PREFIX = "dd0r_"
INVITATION_PREFIX = "dd0i_"
RESET_PREFIX = "dd0p_"


class EmailTaken(Exception):
    """A user with this email exists already."""


class LastOwner(Exception):
    """The change would leave the tenant without an owner."""


def digest(secret: str) -> str:
    """Secrets carry 256 random bits: a fast hash is as safe as a slow one here."""
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class User:
    id: str
    email: str
    password_hash: str | None
    created_at: datetime
    disabled: bool
    password_changed_at: datetime | None = None


@dataclass(frozen=True)
class Member:
    tenant_id: str
    user_id: str
    email: str
    role: str
    created_at: datetime
    disabled: bool


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    #: The user who made it, or made the key it was made with; None for keys made by
    #: the command line (or a key of its) or before migration 0019 (nobody's demotion
    #: or removal revokes those).
    created_by: str | None = None
    #: Their email, in the tenant's key list (None when unknown or no longer a member).
    created_by_email: str | None = None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "created_by": self.created_by,
            "created_by_email": self.created_by_email,
        }


@dataclass(frozen=True)
class Invitation:
    id: str
    tenant_id: str
    email: str
    role: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "invited_by": self.invited_by,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "accepted_at": self.accepted_at,
        }


@dataclass(frozen=True)
class Rotation:
    """The outcome of presenting a refresh token."""

    outcome: Literal["ok", "invalid", "reused"]
    tenant_id: str | None = None
    user_id: str | None = None
    token: str | None = None
    #: The browser session (token family) the new token continues.
    family_id: str | None = None


class RefreshToken(NamedTuple):
    token: str
    id: str
    #: One per sign-in: the session its access tokens belong to (``session_alive``).
    family_id: str


def user_of(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        created_at=row.created_at,
        disabled=bool(row.disabled),
        password_changed_at=row.password_changed_at,
    )


def api_key_of(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        scope=row.scope,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_by=row.created_by,
        created_by_email=row._mapping.get("created_by_email"),
    )


@dataclass(frozen=True, slots=True)
class Revoked:
    """What a member's removal or demotion took with it: the ids of their API keys and
    of their pending invitations."""

    keys: list[str]
    invitations: list[str]


def invitation_of(row: Any) -> Invitation:
    return Invitation(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        role=row.role,
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        accepted_at=row.accepted_at,
    )

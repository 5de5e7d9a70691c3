"""The authenticated caller of a REST request (re-exported by ``permissions``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["owner", "admin", "member", "viewer"]
Scope = Literal["read", "write", "admin"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, in one tenant."""

    tenant_id: str
    user_id: str | None = None
    key_id: str | None = None
    #: For a key: the person who made it (None for the command line's keys), whose
    #: removal or demotion revokes it and every key made with it.
    key_maker: str | None = None
    role: Role | None = None
    scope: Scope | None = None
    #: ``user:<email>`` or ``key:<name>``: what timelines and the audit log record.
    actor: str = ""
    email: str | None = None
    #: How the caller authenticated: ``key``, ``bearer`` (a session token) or ``cookie``.
    via: Literal["key", "bearer", "cookie"] = "key"

    @property
    def is_user(self) -> bool:
        return self.user_id is not None

"""Who may do what: the one permission table, and the FastAPI dependency every REST
endpoint declares.

Each endpoint names exactly one operation::

    @router.post("/incidents/{incident_id}/ack")
    async def ack(principal: Annotated[Principal, require("incidents:act")], ...) -> ...:
        store.incident_action(principal.tenant_id, ..., actor=principal.actor)

``require`` authenticates the caller (an API key or a session bearer token, or the
session cookie with its CSRF token on state-changing requests), then checks the
operation against ``TABLE``: a user by the role of their membership in the tenant, an
API key by its scope. Unauthenticated → 401; authenticated but not allowed → 403
``forbidden``.

Roles, least to most: viewer (reads), member (reads and acts on incidents), admin
(configuration, integrations, routes, keys, users — but not owners), owner
(everything). Key scopes: read (reads), write (reads, incident actions and
configuration writes), admin (everything a key may do: never what only an owner
may, such as making, demoting or removing an owner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from .auth import authenticate
from .principal import Principal, Role, Scope

__all__ = [
    "TABLE",
    "Principal",
    "Role",
    "Rule",
    "Scope",
    "allowed",
    "grantable_scopes",
    "require",
]

ROLES: tuple[Role, ...] = ("owner", "admin", "member", "viewer")
SCOPES: tuple[Scope, ...] = ("admin", "write", "read")

_ALL_ROLES: frozenset[Role] = frozenset(ROLES)
_ADMINS: frozenset[Role] = frozenset({"owner", "admin"})
_ACTORS: frozenset[Role] = frozenset({"owner", "admin", "member"})
_OWNER: frozenset[Role] = frozenset({"owner"})
_ANY_KEY: frozenset[Scope] = frozenset(SCOPES)
_WRITE_KEYS: frozenset[Scope] = frozenset({"write", "admin"})
_ADMIN_KEY: frozenset[Scope] = frozenset({"admin"})
_NO_KEY: frozenset[Scope] = frozenset()


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    scopes: frozenset[Scope]


#: operation -> who may perform it. One entry per kind of operation; every endpoint
#: names one of these (tests/web/test_permissions.py checks every route against it).
TABLE: dict[str, Rule] = {
    # incidents, alerts, suppressions log, deliveries: reading
    "incidents:read": Rule(_ALL_ROLES, _ANY_KEY),
    # ack / resolve / reopen / snooze / feedback / notes / merge / split
    "incidents:act": Rule(_ACTORS, _WRITE_KEYS),
    # settings, topology, silences, inhibitions, routes, Slack settings, suggestions:
    # reading (no secret is ever returned)
    "config:read": Rule(_ALL_ROLES, _ANY_KEY),
    # changing them; accepting / dismissing suggestions; replaying a suppressed alert
    # or a failed delivery; what-if replays
    "config:write": Rule(_ADMINS, _WRITE_KEYS),
    # integrations (their secrets are shown on create and rotate)
    "integrations:read": Rule(_ALL_ROLES, _ANY_KEY),
    "integrations:write": Rule(_ADMINS, _ADMIN_KEY),
    # analytics, usage, onboarding, product events
    "analytics:read": Rule(_ALL_ROLES, _ANY_KEY),
    # the audit log
    "audit:read": Rule(_ADMINS, _ADMIN_KEY),
    # the team: listing members and invitations, inviting, changing roles, removing
    "users:read": Rule(_ALL_ROLES, _ADMIN_KEY),
    "users:admin": Rule(_ADMINS, _ADMIN_KEY),
    # API keys
    "keys:admin": Rule(_ADMINS, _ADMIN_KEY),
    # the tenant itself: its plan, transferring ownership
    "tenant:owner": Rule(_OWNER, _NO_KEY),
    # the caller's own account (``GET /v1/me``, password change, switch): any signed-in
    # user; keys may ask who they are
    "self": Rule(_ALL_ROLES, _ANY_KEY),
}


def grantable_scopes(role: str | None) -> frozenset[Scope]:
    """The key scopes a member of ``role`` may make (None: no longer a member): every
    scope for the roles that manage keys, none for the others. A person's keys are
    revoked when they lose the power to make them (``AccountStore.set_role``)."""
    return frozenset(SCOPES) if role in TABLE["keys:admin"].roles else frozenset()


def invitable_roles(role: str | None) -> frozenset[str]:
    """The roles a member of ``role`` may invite people to (None: no longer a member):
    every role for an owner, all but owner for the other roles that manage the team,
    none for the rest. A person's pending invitations are withdrawn when they lose
    the power to make them (``AccountStore.set_role``)."""
    if role not in TABLE["users:admin"].roles:
        return frozenset()
    return frozenset(ROLES) if role == "owner" else frozenset(ROLES) - {"owner"}


def allowed(operation: str, principal: Principal) -> bool:
    rule = TABLE[operation]
    if principal.role is not None:
        return principal.role in rule.roles
    return principal.scope is not None and principal.scope in rule.scopes


bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A tenant API key (`dd0c_…`) or a session access token (a JWT from "
    "`POST /v1/auth/login`).",
)
cookie_scheme = APIKeyCookie(
    name="dd0c_session",
    auto_error=False,
    description="The dashboard's session cookie; state-changing requests also need the "
    "`X-CSRF-Token` header (or `csrf_token` form field) equal to the `dd0c_csrf` cookie.",
)


async def _authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    return await authenticate(request, credentials, session)


def require(operation: str) -> Any:
    """The dependency of an endpoint performing ``operation``: use it as
    ``principal: Annotated[Principal, require("incidents:act")]``. Raises 401 when the
    caller is not authenticated, 403 when the table does not allow them."""
    if operation not in TABLE:
        raise KeyError(f"unknown operation {operation!r}: add it to permissions.TABLE")

    async def dependency(
        principal: Annotated[Principal, Depends(_authenticate)],
    ) -> Principal:
        if not allowed(operation, principal):
            raise HTTPException(403, f"not allowed: {operation}")
        return principal

    dependency.operation = operation  # type: ignore[attr-defined]
    return Depends(dependency)


def operation_of(dependency: Any) -> str | None:
    """The operation a dependency returned by ``require`` checks (tests walk routes)."""
    return getattr(dependency, "operation", None)

"""Session access tokens: HS256 JWTs with issuer, audience, expiry, issue time, id,
subject (user id), tenant (``tid``), role and sign-in (``sid``, the refresh token
family: a token of a session that logged out is refused); only HS256 is accepted
when reading."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from dd0c_alert.pipeline.auth_config import AuthConfig

ALGORITHM = "HS256"
SESSION_COOKIE = "dd0c_session"
CSRF_COOKIE = "dd0c_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Claims:
    user_id: str
    tenant_id: str
    role: str
    jti: str
    #: The sign-in (refresh token family) the token was issued for; None in tokens
    #: issued before sessions were named, which live out their short lifetime.
    session: str | None = None


def issue_access(config: AuthConfig, user_id: str, tenant_id: str, role: str, session: str) -> str:
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "iss": config.issuer,
        "aud": config.audience,
        "iat": now,
        "exp": now + config.access_ttl,
        "jti": secrets.token_hex(16),
        "sub": user_id,
        "tid": tenant_id,
        "role": role,
        "sid": session,
    }
    return jwt.encode(payload, config.jwt_secret, algorithm=ALGORITHM)


def read_access(config: AuthConfig, token: str) -> Claims | None:
    """The claims of a valid token; None for anything else (expired, wrong issuer,
    audience or algorithm, bad signature, malformed)."""
    try:
        payload = jwt.decode(
            token,
            config.jwt_secret,
            algorithms=[ALGORITHM],
            audience=config.audience,
            issuer=config.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
    except jwt.PyJWTError:
        return None
    tid, sub, role = payload.get("tid"), payload.get("sub"), payload.get("role")
    if not all(isinstance(v, str) and v for v in (tid, sub, role)):
        return None
    sid = payload.get("sid")
    return Claims(
        user_id=str(sub),
        tenant_id=str(tid),
        role=str(role),
        jti=str(payload["jti"]),
        session=sid if isinstance(sid, str) and sid else None,
    )

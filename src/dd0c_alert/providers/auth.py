"""Proof-of-origin checks shared by the provider modules (design §5).

Every comparison of a secret or a signature is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping

from .base import AuthError

MAX_TIMESTAMP_AGE = 300.0


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two secrets or signatures."""
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def presented_tokens(headers: Mapping[str, str], *extra_headers: str) -> list[str]:
    """Every static credential the request carries: bearer, X-DD0C-Token, basic-auth
    password, and any provider-specific token headers."""
    tokens: list[str] = []
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        tokens.append(value.strip())
    elif scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if ":" in decoded:
            tokens.append(decoded.split(":", 1)[1])
    for name in ("x-dd0c-token", *extra_headers):
        if headers.get(name):
            tokens.append(headers[name])
    return tokens


def verify_token(headers: Mapping[str, str], secret: str, *extra_headers: str) -> None:
    """Accept any presented static token equal to the secret."""
    tokens = presented_tokens(headers, *extra_headers)
    if not tokens:
        raise AuthError("missing_signature", "no bearer token, basic auth or X-DD0C-Token")
    # Compare against every token so timing does not reveal which one matched.
    matches = [same(token, secret) for token in tokens]
    if not any(matches):
        raise AuthError("signature_mismatch", "token does not match the integration secret")


def any_signature_matches(expected: str, candidates: Iterable[str]) -> bool:
    matches = [same(expected.lower(), candidate.strip().lower()) for candidate in candidates]
    return any(matches)


def check_timestamp(raw: str, now: float, max_age: float = MAX_TIMESTAMP_AGE) -> None:
    """Reject a signed timestamp outside ±max_age seconds (replay protection).

    Accepts seconds or milliseconds since the epoch.
    """
    try:
        stamp = float(raw)
    except ValueError:
        raise AuthError(
            "invalid_timestamp",
            "the timestamp must be Unix time in seconds (or milliseconds), e.g. 1733300000"
            + (", not an ISO date" if "-" in raw or ":" in raw else ""),
        ) from None
    if not math.isfinite(stamp):  # "nan" compares false with everything: no window at all
        raise AuthError("invalid_timestamp", "the timestamp is not a finite number")
    if stamp > 1e11:  # milliseconds
        stamp /= 1000.0
    if abs(now - stamp) > max_age:
        raise AuthError("timestamp_expired", f"timestamp is more than {int(max_age)} s from now")

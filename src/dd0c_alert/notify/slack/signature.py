"""Slack's v0 request signing, checked before any interaction or command is trusted."""

from __future__ import annotations

import hashlib
import hmac

#: Slack's own recommendation: refuse requests more than five minutes off, either way.
MAX_SKEW_SECONDS = 300


def verify_slack_signature(
    body: bytes, timestamp: str, signature: str, signing_secret: str, now: float
) -> bool:
    """``signature`` is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` and
    ``timestamp`` (unix seconds) lies within 300 s of ``now``, in either direction.

    A non-numeric timestamp fails rather than raising: a forged request gets the same
    answer as a wrongly signed one.
    """
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

"""Stable alert identity, so repeats of one alert fold into one record.

A provider's own dedup key is used when it has one (it already knows which
notifications are the same alert). Otherwise identity is a hash over what names the
alert, never over what changes from one firing to the next (values, timestamps).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

_MAX_NATIVE_KEY = 160


def native_fingerprint(source: str, key: str) -> str:
    """Fingerprint from a provider's own dedup key, kept readable when it is short."""
    if len(key) <= _MAX_NATIVE_KEY and key.isprintable():
        return f"{source}:{key}"
    return f"{source}:sha256:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def computed_fingerprint(
    tenant_id: str,
    source: str,
    name: str,
    service: str,
    identity: Mapping[str, str] | None = None,
) -> str:
    """Fingerprint from the alert's name, service and identifying labels."""
    parts = [tenant_id, source, name, service]
    parts += [f"{key}={value}" for key, value in sorted((identity or {}).items())]
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{source}:h:{digest[:32]}"

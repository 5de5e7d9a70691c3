"""Signed requests already used once: a captured Slack request (same body, timestamp
and signature) verifies again for as long as its timestamp is fresh, so each one is
claimed on first use and a second use is refused.

In Redis when there is one (``SET NX`` with an expiry: every ``api`` process behind a
balancer shares it), else in process memory; Redis being down falls back to memory,
like the rate limits (``redis_state.py``). Only requests whose signature verified are
claimed, so nobody without the signing secret can fill the memory; it is bounded all
the same.
"""

from __future__ import annotations

from typing import Protocol

from dd0c_alert.domain.lru import LRUCache

from .redis_state import RedisLink


class SeenRequests(Protocol):
    def claim(self, key: str, ttl_seconds: float) -> bool:
        """True the first time ``key`` is claimed within ``ttl_seconds``, False after."""

    def release(self, key: str) -> None:
        """Forget a claim whose work failed, so a retry of the request may do it."""


class MemorySeenRequests:
    def __init__(self, max_entries: int = 100_000) -> None:
        # Each entry gets its own expiry; the cache-wide one is never used.
        self._seen: LRUCache[str, bool] = LRUCache(max_entries, ttl_seconds=0.0)

    def claim(self, key: str, ttl_seconds: float) -> bool:
        return self._seen.put_new(key, True, ttl_seconds)

    def release(self, key: str) -> None:
        self._seen.pop(key)


class RedisSeenRequests:
    """A key per claimed request, set only if absent, expiring with the window."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._memory = MemorySeenRequests()

    @staticmethod
    def _key(key: str) -> str:
        return f"dd0c:seen:{key}"

    def claim(self, key: str, ttl_seconds: float) -> bool:
        def primary() -> bool:
            ttl_ms = max(1, int(ttl_seconds * 1000))
            return bool(self._link.client.set(self._key(key), b"1", nx=True, px=ttl_ms))

        return self._link.call(primary, lambda: self._memory.claim(key, ttl_seconds))

    def release(self, key: str) -> None:
        def primary() -> None:
            self._link.client.delete(self._key(key))

        self._link.call(primary, lambda: self._memory.release(key))

"""The bounded cache every per-process cache of request-given keys uses (issue 13)."""

from __future__ import annotations

from dd0c_alert.domain.lru import LRUCache


def test_least_recently_used_goes_first_and_entries_expire() -> None:
    now = [0.0]
    cache: LRUCache[str, str | None] = LRUCache(3, ttl_seconds=5, clock=lambda: now[0])
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == (True, "A")  # a is now the most recent
    cache.put("d", None)  # evicts b, the least recently used
    assert cache.get("b") == (False, None)
    assert cache.get("d") == (True, None)  # a cached "nothing" is a hit
    assert len(cache) == 3
    now[0] = 6
    assert cache.get("a") == (False, None)


def test_many_random_keys_keep_the_cache_at_its_bound() -> None:
    cache: LRUCache[int, None] = LRUCache(1_000, ttl_seconds=60)
    for key in range(100_000):
        cache.put(key, None)
    assert len(cache) == 1_000

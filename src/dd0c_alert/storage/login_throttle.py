"""Failed-login counting over a sliding window: in Redis when there is one (every
process shares it), else in process memory; Redis being down falls back to memory."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

from dd0c_alert.domain.lru import LRUCache

from .redis_state import RedisLink


class LoginThrottle(Protocol):
    def retry_after(self, key: str, limit: int, window: float) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""

    def fail(self, key: str, window: float) -> None:
        """Count a failure of ``key``."""

    def clear(self, key: str) -> None: ...


class MemoryLoginThrottle:
    def __init__(self, max_keys: int = 100_000) -> None:
        # LRU-bounded: keys come from unauthenticated requests.
        self._failures: LRUCache[str, deque[float]] = LRUCache(max_keys, ttl_seconds=86_400)
        self._lock = threading.Lock()

    def _recent(self, key: str, window: float, now: float) -> deque[float]:
        _, found = self._failures.get(key)
        times = found if found is not None else deque()
        while times and times[0] <= now - window:
            times.popleft()
        return times

    def retry_after(self, key: str, limit: int, window: float) -> float:
        now = time.time()
        with self._lock:
            times = self._recent(key, window, now)
            if len(times) < limit:
                return 0.0
            return max(times[len(times) - limit] + window - now, 1.0)

    def fail(self, key: str, window: float) -> None:
        now = time.time()
        with self._lock:
            times = self._recent(key, window, now)
            times.append(now)
            self._failures.put(key, times)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.put(key, deque())


class RedisLoginThrottle:
    """A sorted set per key of failure times (scored by the server's clock)."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._memory = MemoryLoginThrottle()

    @staticmethod
    def _key(key: str) -> str:
        return f"dd0c:login:{key}"

    def retry_after(self, key: str, limit: int, window: float) -> float:
        def primary() -> float:
            client = self._link.client
            now = float(client.time()[0])
            client.zremrangebyscore(self._key(key), 0, now - window)
            oldest = client.zrange(self._key(key), -limit, -limit, withscores=True)
            count = int(client.zcard(self._key(key)))
            if count < limit or not oldest:
                return 0.0
            return max(float(oldest[0][1]) + window - now, 1.0)

        return self._link.call(primary, lambda: self._memory.retry_after(key, limit, window))

    def fail(self, key: str, window: float) -> None:
        def primary() -> None:
            client = self._link.client
            now = client.time()
            stamp = now[0] + now[1] / 1_000_000
            pipe = client.pipeline()
            pipe.zadd(self._key(key), {f"{stamp:.6f}": stamp})
            pipe.expire(self._key(key), int(window) + 1)
            pipe.execute()

        self._link.call(primary, lambda: self._memory.fail(key, window))

    def clear(self, key: str) -> None:
        def primary() -> None:
            self._link.client.delete(self._key(key))

        self._link.call(primary, lambda: self._memory.clear(key))

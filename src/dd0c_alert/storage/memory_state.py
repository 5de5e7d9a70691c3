"""Rate limits and circuit breakers held in process memory: the embedded mode, and the
fallback of the Redis adapters while Redis does not answer.

Both are guarded by a lock: the event loop admits webhooks while worker and notifier
threads call out, and a Redis outage can route any of them here at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per key, holding one second's worth of tokens (at least one,
    so a rate below 1/s still admits a request every 1/rate seconds)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float) -> float:
        capacity = max(rate, 1.0)
        with self._lock:
            now = time.monotonic()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=capacity, updated=now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0


class MemoryCircuitBreaker:
    """Consecutive failures per name; only names that are failing are kept."""

    def __init__(self, threshold: int = 5, cooldown_seconds: float = 30.0) -> None:
        self._threshold = threshold
        self._cooldown = cooldown_seconds
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str) -> float:
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.failures < self._threshold:
                return 0.0
            now = time.monotonic()
            if now < circuit.open_until:
                return circuit.open_until - now
            # Half-open: this caller holds the one trial; everyone else waits until it
            # reports, or until another cool-down passes if it never does.
            circuit.open_until = now + self._cooldown
            return 0.0

    def record_success(self, name: str) -> None:
        with self._lock:
            self._circuits.pop(name, None)

    def record_failure(self, name: str) -> None:
        with self._lock:
            circuit = self._circuits.setdefault(name, _Circuit())
            circuit.failures += 1
            if circuit.failures >= self._threshold:
                circuit.open_until = time.monotonic() + self._cooldown

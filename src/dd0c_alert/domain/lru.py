"""A small bounded cache with per-entry expiry: least recently used entries go first.

For the per-process caches of tenants, integrations and API keys, whose keys come
from unauthenticated requests: unbounded, each random id would stay for ever.
Thread-safe (handlers run in a thread pool)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    def __init__(
        self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a fresh entry, ``(False, None)`` otherwise (so a
        cached ``None`` — "no such tenant" — is a hit too)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if entry[1] < self._clock():
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, entry[0]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = (value, self._clock() + self.ttl_seconds)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def put_new(self, key: K, value: V, ttl_seconds: float | None = None) -> bool:
        """Store ``value`` unless ``key`` holds a fresh entry; whether it was stored.
        One step under the lock, so of two threads putting one key only one wins."""
        with self._lock:
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None and entry[1] >= now:
                return False
            ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
            self._entries[key] = (value, now + ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return True

    def pop(self, key: K) -> None:
        """Forget ``key`` (an entry made stale by a change, e.g. a revoked key)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

"""Rate limits and circuit breakers in Redis, shared by every process (production), each
falling back to its in-memory twin while Redis does not answer.

Redis here only makes limits global across processes; nothing durable lives in it. So
an outage degrades instead of failing: admission and breakers go on per process, and
readiness says ``degraded``. Each operation is one Lua script, atomic on the server,
and reads the server's clock so processes on different hosts agree on time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from .memory_state import MemoryCircuitBreaker, TokenBuckets

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Admission waits on Redis in the webhook's latency path: a Redis that does not answer
#: at once is treated as down rather than waited for.
_TIMEOUT_SECONDS = 0.25

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

#: KEYS[1] bucket; ARGV[1] rate per second, ARGV[2] tokens wanted. Takes up to that
#: many whole tokens; returns "<taken> <wait seconds>" (a string: Redis would truncate a
#: Lua number to an integer), the wait being for one token when none was taken. A
#: missing bucket is a full one, so the key may expire once it would have refilled.
_TAKE = (
    """
local rate = tonumber(ARGV[1])
local capacity = math.max(rate, 1)
"""
    + _NOW
    + """
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local taken = math.min(math.floor(tokens), tonumber(ARGV[2]))
local wait = 0
if taken >= 1 then
  tokens = tokens - taken
else
  taken = 0
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'updated', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return taken .. ' ' .. string.format('%.17g', wait)
"""
)

#: A process takes tokens from the shared bucket in leases of up to this share of a
#: second's rate, and spends them locally for at most ``_LEASE_SECONDS``: one Redis
#: round-trip admits many requests instead of one (a synchronous round-trip per
#: webhook was most of an ingest process's time). The price: a lease left unspent
#: when it lapses is lost, so a process may admit slightly less than the rate, never
#: more than the rate plus one lease per process.
_LEASE_SHARE = 0.01
_LEASE_MAX_TOKENS = 100
_LEASE_SECONDS = 0.1

#: KEYS[1] circuit; ARGV[1] threshold, ARGV[2] cool-down seconds. Past the cool-down
#: the caller takes the half-open trial by pushing ``open_until`` one cool-down on.
_ACQUIRE = (
    """
local state = redis.call('HMGET', KEYS[1], 'failures', 'open_until')
if (tonumber(state[1]) or 0) < tonumber(ARGV[1]) then
  return '0'
end
"""
    + _NOW
    + """
local open_until = tonumber(state[2]) or 0
if now < open_until then
  return string.format('%.17g', open_until - now)
end
redis.call('HSET', KEYS[1], 'open_until', string.format('%.17g', now + tonumber(ARGV[2])))
return '0'
"""
)

#: KEYS[1] circuit; ARGV[1] threshold, ARGV[2] cool-down seconds, ARGV[3] key TTL.
_FAIL = (
    """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then
"""
    + _NOW
    + """
  redis.call('HSET', KEYS[1], 'open_until', string.format('%.17g', now + tonumber(ARGV[2])))
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
"""
)

#: The longest wait between retries of a Redis that keeps failing.
_MAX_RETRY_SECONDS = 15.0

#: A circuit nobody touched for this long is forgotten (closed).
_CIRCUIT_IDLE_SECONDS = 24 * 3600


class RedisLink:
    """One Redis client and whether it answers.

    Calls go to Redis while it answers. When one fails, calls go to the fallback and
    Redis is tried again after a backoff that doubles while it keeps failing: a Redis
    that times out instead of refusing costs a stalled request on every retry.
    """

    def __init__(self, client: redis.Redis, *, retry_seconds: float = 1.0) -> None:
        self.client = client
        self._retry_seconds = retry_seconds
        self._backoff = retry_seconds
        self._retry_at = 0.0
        self._error: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, retry_seconds: float = 1.0) -> RedisLink:
        """No client-side retries either: the fallback is the retry."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=_TIMEOUT_SECONDS,
            socket_connect_timeout=_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, retry_seconds=retry_seconds)

    @property
    def healthy(self) -> bool:
        return self._error is None

    @property
    def last_error(self) -> str | None:
        return self._error

    def call(self, primary: Callable[[], T], fallback: Callable[[], T]) -> T:
        """``primary`` (a Redis operation) unless Redis is backing off or fails now;
        ``fallback`` otherwise."""
        if self._error is not None and time.monotonic() < self._retry_at:
            return fallback()
        try:
            result = primary()
        except redis.RedisError as exc:
            self._failed(exc)
            return fallback()
        if self._error is not None:
            self._recovered()
        return result

    def probe(self) -> None:
        self.call(lambda: bool(self.client.ping()), lambda: False)

    def close(self) -> None:
        self.client.close()

    def _failed(self, exc: redis.RedisError) -> None:
        # The message names host and port at most, never the URL's password.
        error = f"{type(exc).__name__}: {exc}"[:200]
        with self._lock:
            now = time.monotonic()
            if self._error is None:
                self._backoff = self._retry_seconds
                log.warning(
                    "redis_degraded", error=error, fallback="process memory", retry_in=self._backoff
                )
            elif now >= self._retry_at:  # a failed retry, not a call racing the first failure
                self._backoff = min(self._backoff * 2, _MAX_RETRY_SECONDS)
            self._error = error
            self._retry_at = now + self._backoff

    def _recovered(self) -> None:
        with self._lock:
            if self._error is not None:
                log.info("redis_recovered", previous_error=self._error)
                self._error = None


class RedisRateLimiter:
    """Token buckets shared by every ingest process, so a tenant's limit is global;
    per process (TokenBuckets) while Redis is down."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._take = link.client.register_script(_TAKE)
        self._fallback = TokenBuckets()
        self._leases: dict[str, tuple[int, float]] = {}  # key -> (tokens left, expires)
        self._lock = threading.Lock()

    def take(self, key: str, rate: float) -> float:
        now = time.monotonic()
        with self._lock:
            left, expires = self._leases.get(key, (0, 0.0))
            if left > 0 and now < expires:
                self._leases[key] = (left - 1, expires)
                return 0.0
        return self._link.call(
            lambda: self._lease(key, rate, now), lambda: self._fallback.take(key, rate)
        )

    def _lease(self, key: str, rate: float, now: float) -> float:
        want = max(1, min(_LEASE_MAX_TOKENS, int(rate * _LEASE_SHARE)))
        reply: bytes = self._take(keys=[f"dd0c:rate:{key}"], args=[rate, want])
        taken, wait = reply.split()
        if int(taken) == 0:
            return float(wait)
        with self._lock:
            self._leases[key] = (int(taken) - 1, now + _LEASE_SECONDS)
        return 0.0


class RedisCircuitBreaker:
    """Circuits shared by every process: one process's failures open the circuit for
    all. Per process (MemoryCircuitBreaker) while Redis is down."""

    def __init__(self, link: RedisLink, threshold: int = 5, cooldown_seconds: float = 30.0) -> None:
        self._link = link
        self._args: list[int | float] = [threshold, cooldown_seconds]
        self._ttl = int(cooldown_seconds) + _CIRCUIT_IDLE_SECONDS
        self._acquire = link.client.register_script(_ACQUIRE)
        self._fail = link.client.register_script(_FAIL)
        self._fallback = MemoryCircuitBreaker(threshold, cooldown_seconds)

    def acquire(self, name: str) -> float:
        return self._link.call(
            lambda: float(self._acquire(keys=[_circuit_key(name)], args=self._args)),
            lambda: self._fallback.acquire(name),
        )

    def record_success(self, name: str) -> None:
        self._link.call(
            lambda: self._link.client.delete(_circuit_key(name)),
            lambda: self._fallback.record_success(name),
        )

    def record_failure(self, name: str) -> None:
        self._link.call(
            lambda: self._fail(keys=[_circuit_key(name)], args=[*self._args, self._ttl]),
            lambda: self._fallback.record_failure(name),
        )


def _circuit_key(name: str) -> str:
    return f"dd0c:circuit:{name}"

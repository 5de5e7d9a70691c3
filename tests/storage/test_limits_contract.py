"""One contract for the rate limiter and circuit breaker adapters, in process memory and
in a real Redis; then what only Redis gives: one bucket and one circuit shared by
several processes.

Refill and cool-down are real time (the Redis adapters read the server's clock), so
rates are small and cool-downs short; no test asserts how long anything took.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from dd0c_alert.storage.memory_state import MemoryCircuitBreaker, TokenBuckets
from dd0c_alert.storage.ports import CircuitBreaker, CircuitOpen, RateLimiter, guarded
from dd0c_alert.storage.redis_state import RedisCircuitBreaker, RedisLink, RedisRateLimiter
from servers import RedisServer

THRESHOLD = 3
COOLDOWN = 0.2


@pytest.fixture
def key() -> str:
    return f"t-{uuid.uuid4().hex}"


def _link(server: RedisServer) -> RedisLink:
    return RedisLink.from_url(server.url)


@pytest.fixture
def links(request: pytest.FixtureRequest) -> Iterator[list[RedisLink]]:
    """Redis links opened by a test, each like a separate process; every one must have
    stayed healthy, so no answer came from the in-memory fallback."""
    opened: list[RedisLink] = []
    yield opened
    for link in opened:
        assert link.healthy, link.last_error
        link.close()


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest, links: list[RedisLink]) -> RateLimiter:
    if request.param == "memory":
        return TokenBuckets()
    links.append(_link(request.getfixturevalue("redis_server")))
    return RedisRateLimiter(links[-1])


@pytest.fixture(params=["memory", "redis"])
def breaker(request: pytest.FixtureRequest, links: list[RedisLink]) -> CircuitBreaker:
    if request.param == "memory":
        return MemoryCircuitBreaker(THRESHOLD, COOLDOWN)
    links.append(_link(request.getfixturevalue("redis_server")))
    return RedisCircuitBreaker(links[-1], THRESHOLD, COOLDOWN)


def _burst(limiter: RateLimiter, key: str, rate: float) -> tuple[int, float]:
    """Take until refused: how many were admitted, and the wait then announced."""
    for admitted in range(1000):
        wait = limiter.take(key, rate)
        if wait > 0:
            return admitted, wait
    raise AssertionError("never refused")


# --- rate limiter ---------------------------------------------------------------------


def test_admits_one_seconds_worth_then_refuses_with_the_wait(
    limiter: RateLimiter, key: str
) -> None:
    admitted, wait = _burst(limiter, key, 5)
    assert admitted == 5
    assert 0 < wait <= 1 / 5


def test_refills_at_the_rate(limiter: RateLimiter, key: str) -> None:
    _, wait = _burst(limiter, key, 20)
    time.sleep(wait + 0.01)
    assert limiter.take(key, 20) == 0


def test_a_rate_below_one_per_second_admits_one_then_waits(limiter: RateLimiter, key: str) -> None:
    assert limiter.take(key, 0.5) == 0
    assert 1.9 < limiter.take(key, 0.5) <= 2.0


def test_a_lowered_rate_caps_the_bucket_at_once(limiter: RateLimiter, key: str) -> None:
    assert limiter.take(key, 100) == 0
    admitted, _ = _burst(limiter, key, 2)
    assert admitted == 2


def test_keys_are_independent(limiter: RateLimiter, key: str) -> None:
    _burst(limiter, key, 3)
    assert limiter.take(key + "-other", 3) == 0
    assert limiter.take(key, 3) > 0


# --- circuit breaker ------------------------------------------------------------------


def _open(breaker: CircuitBreaker, name: str) -> None:
    for _ in range(THRESHOLD):
        breaker.record_failure(name)


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker, key: str) -> None:
    for _ in range(THRESHOLD - 1):
        breaker.record_failure(key)
        assert breaker.acquire(key) == 0
    breaker.record_failure(key)
    assert 0 < breaker.acquire(key) <= COOLDOWN


def test_a_success_resets_the_count(breaker: CircuitBreaker, key: str) -> None:
    for _ in range(THRESHOLD - 1):
        breaker.record_failure(key)
    breaker.record_success(key)
    for _ in range(THRESHOLD - 1):
        breaker.record_failure(key)
    assert breaker.acquire(key) == 0


def test_an_open_circuit_refuses_without_calling(breaker: CircuitBreaker, key: str) -> None:
    _open(breaker, key)
    calls: list[str] = []
    with pytest.raises(CircuitOpen) as refused, guarded(breaker, key):
        calls.append("called")
    assert calls == []
    assert refused.value.name == key
    assert 0 < refused.value.retry_after <= COOLDOWN


def test_guarded_counts_escaping_errors_and_passes_them_on(
    breaker: CircuitBreaker, key: str
) -> None:
    for _ in range(THRESHOLD):
        with pytest.raises(ConnectionError), guarded(breaker, key):
            raise ConnectionError("slack is down")
    assert breaker.acquire(key) > 0


def test_half_open_lets_one_trial_through_and_closes_on_success(
    breaker: CircuitBreaker, key: str
) -> None:
    _open(breaker, key)
    time.sleep(COOLDOWN)
    with guarded(breaker, key):
        assert breaker.acquire(key) > 0  # while the trial runs, everyone else waits
    for _ in range(THRESHOLD):
        assert breaker.acquire(key) == 0


def test_a_failed_trial_opens_the_circuit_again(breaker: CircuitBreaker, key: str) -> None:
    _open(breaker, key)
    time.sleep(COOLDOWN)
    with pytest.raises(TimeoutError), guarded(breaker, key):
        raise TimeoutError
    assert 0 < breaker.acquire(key) <= COOLDOWN


def test_circuits_are_independent(breaker: CircuitBreaker, key: str) -> None:
    _open(breaker, key)
    with guarded(breaker, key + "-other"):
        pass
    assert breaker.acquire(key) > 0


# --- Redis: one state for every process -------------------------------------------------


def test_processes_share_one_bucket(
    redis_server: RedisServer, links: list[RedisLink], key: str
) -> None:
    links.extend([_link(redis_server), _link(redis_server)])
    first, second = RedisRateLimiter(links[0]), RedisRateLimiter(links[1])
    answers = [limiter.take(key, 4) for _ in range(3) for limiter in (first, second)]
    assert answers.count(0) == 4


def test_processes_share_one_circuit(
    redis_server: RedisServer, links: list[RedisLink], key: str
) -> None:
    links.extend([_link(redis_server), _link(redis_server)])
    first = RedisCircuitBreaker(links[0], THRESHOLD, COOLDOWN)
    second = RedisCircuitBreaker(links[1], THRESHOLD, COOLDOWN)
    first.record_failure(key)
    second.record_failure(key)
    first.record_failure(key)
    assert second.acquire(key) > 0
    time.sleep(COOLDOWN)
    assert first.acquire(key) == 0  # the one trial, taken by the first process
    assert second.acquire(key) > 0
    first.record_success(key)
    assert second.acquire(key) == 0


def test_idle_state_expires_from_redis(
    redis_server: RedisServer, links: list[RedisLink], key: str
) -> None:
    links.append(_link(redis_server))
    RedisRateLimiter(links[0]).take(key, 10)
    assert 0 < links[0].client.pttl(f"dd0c:rate:{key}") <= 2000  # full again after 1 s
    breaker = RedisCircuitBreaker(links[0], THRESHOLD, COOLDOWN)
    breaker.record_failure(key)
    assert links[0].client.ttl(f"dd0c:circuit:{key}") > 0
    breaker.record_success(key)
    assert not links[0].client.exists(f"dd0c:circuit:{key}")

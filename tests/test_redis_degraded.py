"""Redis killed during a run: rate limits and circuit breakers go on in process memory,
webhooks are still accepted and processed, /readyz says degraded (not failing), and
everything returns to Redis once it is back on the same address."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain
from dd0c_alert.pipeline.ingest import IngestService
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.redis_state import RedisCircuitBreaker, RedisLink, RedisRateLimiter
from dd0c_alert.web.app import create_app
from servers import RedisServer
from webhook_helpers import auth_headers

#: Short, so the tests see Redis retried soon after it is back.
RETRY_SECONDS = 0.05


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, since the test kills it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_limits_and_breakers_fall_back_to_memory_and_return_to_redis(
    own_redis: RedisServer,
) -> None:
    link = RedisLink.from_url(own_redis.url, retry_seconds=RETRY_SECONDS)
    limiter = RedisRateLimiter(link)
    breaker = RedisCircuitBreaker(link, threshold=2, cooldown_seconds=30)
    assert limiter.take("acme", 5) == 0
    breaker.record_failure("slack:T1")
    assert link.healthy

    own_redis.kill()
    answers = [limiter.take("acme", 5) for _ in range(6)]
    assert answers[:5] == [0] * 5 and answers[5] > 0  # still limited, per process now
    assert not link.healthy
    assert link.last_error is not None and link.last_error.startswith("ConnectionError")
    breaker.record_failure("slack:T1")
    breaker.record_failure("slack:T1")
    assert breaker.acquire("slack:T1") > 0  # breakers keep working in memory too

    own_redis.start()  # same port; empty, and without the scripts loaded
    _eventually(lambda: limiter.take("probe", 100) == 0 and link.healthy)
    assert link.last_error is None
    assert limiter.take("acme", 5) == 0
    assert link.client.exists("dd0c:rate:acme")
    other = RedisLink.from_url(own_redis.url)
    breaker.record_failure("slack:T2")
    breaker.record_failure("slack:T2")
    assert RedisCircuitBreaker(other, threshold=2, cooldown_seconds=30).acquire("slack:T2") > 0
    other.close()
    link.close()


def test_webhooks_are_accepted_and_readyz_degrades_while_redis_is_down(
    runtime: Runtime, tenant: TenantHandle, own_redis: RedisServer
) -> None:
    link = RedisLink.from_url(own_redis.url, retry_seconds=RETRY_SECONDS)
    runtime.redis = link
    runtime.ingest = IngestService(
        runtime.store,
        runtime.queue,
        runtime.archive,
        runtime.ingest.limits,
        rate_limiter=RedisRateLimiter(link),
    )
    tenant.integration("custom", "s3cret")

    def send(client: TestClient, title: str) -> int:
        body = json.dumps({"title": title, "service": "db"}).encode()
        headers = auth_headers("custom", body, "s3cret", {})
        return client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=headers).status_code

    with TestClient(create_app(runtime)) as client:
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
        assert ready.json()["checks"]["redis"] == "ok"
        assert send(client, "before") == 202

        own_redis.kill()
        assert send(client, "during") == 202
        degraded = client.get("/readyz")
        assert (degraded.status_code, degraded.json()["status"]) == (200, "degraded")
        checks = degraded.json()["checks"]
        # The cause in words, not redis-py's text, which names the host and port: the
        # endpoint needs no login.
        assert checks["redis"] == "degraded: ConnectionError (connection refused)", checks
        assert str(own_redis.port) not in degraded.text
        assert checks["database"] == "ok"

        own_redis.start()
        _eventually(lambda: client.get("/readyz").json()["status"] == "ready")
        assert send(client, "after") == 202
        drain(runtime)
        titles = {
            item["title"] for item in client.get("/v1/alerts", headers=tenant.auth).json()["items"]
        }
        assert titles == {"before", "during", "after"}

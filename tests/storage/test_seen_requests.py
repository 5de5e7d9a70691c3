"""Requests claimed once (the Slack replay guard), in process memory and in a real
Redis: a second claim of a key is refused until it expires, a released claim can be
made again, one Redis is shared by several processes, and a Redis that dies leaves
the guard working in process memory."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dd0c_alert.storage.redis_state import RedisLink
from dd0c_alert.storage.seen_requests import MemorySeenRequests, RedisSeenRequests, SeenRequests
from servers import RedisServer


@pytest.fixture
def key() -> str:
    return f"slack:{uuid.uuid4().hex}"


@pytest.fixture
def links() -> Iterator[list[RedisLink]]:
    """Links opened by a test, each like a separate process; none may have fallen back."""
    opened: list[RedisLink] = []
    yield opened
    for link in opened:
        assert link.healthy, link.last_error
        link.close()


@pytest.fixture(params=["memory", "redis"])
def seen(request: pytest.FixtureRequest, links: list[RedisLink]) -> SeenRequests:
    if request.param == "memory":
        return MemorySeenRequests()
    links.append(RedisLink.from_url(request.getfixturevalue("redis_server").url))
    return RedisSeenRequests(links[-1])


def test_a_key_is_claimed_once_until_it_expires(seen: SeenRequests, key: str) -> None:
    assert seen.claim(key, 0.3)
    assert not seen.claim(key, 0.3)
    assert seen.claim(f"{key}-other", 0.3)  # keys are independent
    time.sleep(0.45)
    assert seen.claim(key, 0.3)


def test_a_released_claim_can_be_made_again(seen: SeenRequests, key: str) -> None:
    assert seen.claim(key, 60)
    seen.release(key)
    assert seen.claim(key, 60)


def test_memory_is_bounded_oldest_first(key: str) -> None:
    seen = MemorySeenRequests(max_entries=2)
    for n in range(3):
        assert seen.claim(f"{key}-{n}", 60)
    assert seen.claim(f"{key}-0", 60)  # dropped to keep the bound
    assert not seen.claim(f"{key}-2", 60)


def test_one_redis_is_shared_by_every_process(
    redis_server: RedisServer, links: list[RedisLink], key: str
) -> None:
    links.extend(RedisLink.from_url(redis_server.url) for _ in range(2))
    first, second = (RedisSeenRequests(link) for link in links)
    assert first.claim(key, 60)
    assert not second.claim(key, 60)


def test_a_dead_redis_falls_back_to_process_memory(tmp_path: Path, key: str) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    link = RedisLink.from_url(server.url, retry_seconds=0.05)
    try:
        seen = RedisSeenRequests(link)
        server.kill()
        assert seen.claim(key, 60)
        assert not seen.claim(key, 60)
        assert not link.healthy
    finally:
        link.close()
        server.stop()

"""Unauthenticated posts to random tenant ids cannot grow the ingest caches without
bound: the tenant and integration caches are LRUs of CACHE_ENTRIES entries."""

from __future__ import annotations

import asyncio

import pytest

from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.domain.ids import new_id
from dd0c_alert.pipeline import ingest
from dd0c_alert.pipeline.ingest import Rejected


def test_random_tenant_ids_do_not_grow_the_cache(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "CACHE_ENTRIES", 1000)
    runtime = build_runtime(settings, roles=frozenset({"ingest"}))
    service = runtime.ingest
    body = b'{"title": "probe"}'
    answers: set[tuple[int, str, str]] = set()

    async def probe(count: int) -> None:
        for _ in range(count // 500):
            tenant_ids = [new_id() for _ in range(500)]  # shaped like ids: looked up
            outcomes = await asyncio.gather(
                *(service.receive(t, "custom", None, {}, body) for t in tenant_ids),
                return_exceptions=True,
            )
            for outcome in outcomes:
                assert isinstance(outcome, Rejected)
                answers.add((outcome.status, outcome.reason, outcome.detail))
            assert len(service._tenants) <= 1000

    try:
        asyncio.run(probe(5_000))  # five times the cap: each unknown id is a lookup
    finally:
        runtime.stop()
    assert len(service._tenants) == 1000  # full, and no more
    assert len(service._integrations) == 0  # never reached for an unknown tenant
    assert answers == {(401, "unknown_integration", "no custom integration here")}

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


def test_requests_that_miss_together_share_one_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold or just-expired cache under load: every connection's request misses at
    once. They wait for one read of the tenant and one of its integrations; and a
    burst of bad signatures, each asking for the integrations afresh, costs one more."""
    runtime = build_runtime(settings, roles=frozenset({"ingest"}))
    store = runtime.store
    tenant = store.create_tenant("acme").id
    store.create_integration(tenant, "alertmanager", "am", "s3cret")
    reads: list[str] = []
    for name in ("get_tenant", "integrations_for"):
        real = getattr(store, name)

        def spy(*args: object, _real: object = real, _name: str = name) -> object:
            reads.append(_name)
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(store, name, spy)
    service = runtime.ingest
    body = b'{"alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"}}]}'

    async def burst(secret: str) -> list[object]:
        headers = {"authorization": f"Bearer {secret}"}
        return await asyncio.gather(
            *(service.receive(tenant, "alertmanager", None, headers, body) for _ in range(50)),
            return_exceptions=True,
        )

    runtime.start()
    try:
        accepted = asyncio.run(burst("s3cret"))
        assert all(not isinstance(a, BaseException) for a in accepted), accepted
        assert sorted(reads) == ["get_tenant", "integrations_for"]
        reads.clear()
        refused = asyncio.run(burst("wrong"))
    finally:
        runtime.stop()
    assert {(r.status, r.reason) for r in refused if isinstance(r, Rejected)} == {
        (401, "signature_mismatch")
    }
    assert reads == ["integrations_for"]

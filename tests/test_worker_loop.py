"""The worker's loop: a backlog is worked off batch after batch, without a poll
interval's sleep between batches the adaptive claim limit made small."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dd0c_alert.app import build_runtime
from dd0c_alert.pipeline.worker import Worker
from dd0c_alert.web.app import create_app
from test_poison_events import post_custom
from webhook_helpers import make_settings, new_tenant

pytestmark = pytest.mark.both_modes


def test_a_backlog_drains_without_waiting_between_batches(tmp_path: Path) -> None:
    runtime = build_runtime(make_settings(tmp_path / "d"), roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(runtime)) as client:
        tenant = new_tenant(runtime)
        for n in range(6):
            post_custom(client, tenant, {"title": f"backlog {n}", "service": "s"})
        # A poll interval no test could sit through: the loop must not wait while the
        # queue still holds events, whatever the claim limit (it starts at one).
        worker = Worker(runtime.store, runtime.queue, runtime.archive, poll_seconds=3600)
        waited_with: list[int] = []

        def pause(seconds: float) -> None:
            waited_with.append(runtime.queue.depth().messages)
            worker.stop()

        worker.pause = pause  # type: ignore[method-assign]
        worker.run()
        assert waited_with == [0]
        assert worker.processed == 6

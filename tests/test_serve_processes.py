"""`dd0c-alert serve` is two processes: admission and the API here, the worker, notifier
and scheduled jobs in a child it supervises. The child is restarted when it dies, exits
when its parent dies (even by SIGKILL), and its metrics show on the parent's /metrics."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dd0c_alert.storage.sqlite_queue import queue_file
from test_durability import SECRET, Deployment, Server, am_webhook, deployment, serve

pytestmark = pytest.mark.slow
__all__ = ["deployment"]  # the fixture, imported for its use here


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def wait_for(check: Callable[[], bool], timeout: float, what: str, server: Server) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{server.log_tail()}"
        time.sleep(0.1)


def background_ready(server: Server) -> bool:
    response = httpx.get(f"{server.base_url}/readyz", timeout=5)
    return response.json()["checks"].get("background") == "ok"


def post_and_count(deployment: Deployment, server: Server, fingerprint: str) -> Callable[[], bool]:
    response = httpx.post(
        f"{server.base_url}/v1/wh/{deployment.tenant_id}/alertmanager",
        content=am_webhook([fingerprint]),
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 202, response.text

    def stored() -> bool:
        alerts = httpx.get(
            f"{server.base_url}/v1/alerts",
            params={"fingerprint": fingerprint},
            headers={"Authorization": f"Bearer {deployment.api_key}"},
            timeout=10,
        )
        return bool(alerts.json()["items"])

    return stored


def decided_count(server: Server) -> float:
    """``dd0c_alerts_decided_total`` summed over outcomes, from ``serve``'s /metrics."""
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("dd0c_alerts_decided_total")
    )


def test_a_dead_background_process_is_restarted_and_the_worker_goes_on(
    deployment: Deployment,
) -> None:
    with serve(deployment, "restart") as server:
        wait_for(lambda: background_ready(server), 60, "background never ready", server)
        (child,) = children(server.process.pid)
        os.kill(child, signal.SIGKILL)
        wait_for(
            lambda: children(server.process.pid) not in ([], [child]),
            60,
            "background process not restarted",
            server,
        )
        wait_for(lambda: background_ready(server), 60, "restarted child never ready", server)
        stored = post_and_count(deployment, server, "after-restart")
        wait_for(stored, 60, "alert not processed by the restarted worker", server)
        # The worker's counters live in the child; the parent's /metrics adds them up.
        # The child counts a batch just after its commit, which made the alert visible.
        wait_for(lambda: decided_count(server) >= 1, 10, "no decision counted", server)


def test_the_background_process_exits_when_serve_is_killed(deployment: Deployment) -> None:
    with serve(deployment, "orphan") as server:
        wait_for(lambda: background_ready(server), 60, "background never ready", server)
        (child,) = children(server.process.pid)
        os.kill(server.process.pid, signal.SIGKILL)  # the parent alone
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
            assert time.monotonic() < deadline, "the worker outlived its serve"
            time.sleep(0.05)


def test_readiness_degrades_while_a_frozen_worker_lets_the_queue_age(
    deployment: Deployment,
) -> None:
    """A stopped (SIGSTOP) child is alive to every liveness check: only the queue's age
    shows that nothing is processed. Readiness degrades (200: admission still works)
    and recovers once the worker moves again."""
    with serve(deployment, "frozen", DD0C_READY_QUEUE_LAG_SECONDS="1") as server:
        wait_for(lambda: background_ready(server), 60, "background never ready", server)
        (child,) = children(server.process.pid)
        os.kill(child, signal.SIGSTOP)
        try:
            stored = post_and_count(deployment, server, "while-frozen")
            time.sleep(1.5)
            ready = httpx.get(f"{server.base_url}/readyz", timeout=5)
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "degraded", ready.text
            assert ready.json()["checks"]["queue"].startswith("degraded: lagging (1 waiting"), (
                ready.text
            )
            assert ready.json()["checks"]["background"] == "ok"  # alive, and yet stuck
        finally:
            os.kill(child, signal.SIGCONT)
        wait_for(stored, 60, "alert not processed after the worker resumed", server)
        wait_for(
            lambda: httpx.get(f"{server.base_url}/readyz", timeout=5).json()["status"] == "ready",
            30,
            "readiness did not recover",
            server,
        )


def _audited_address(deployment: Deployment, server: Server, forwarded_for: str) -> str:
    """The address the audit log records for a change made from 127.0.0.2 (another
    loopback address: a proxy on another host, as far as the server can tell) with
    ``X-Forwarded-For``."""
    auth = {"Authorization": f"Bearer {deployment.api_key}"}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as client:
        changed = client.put(
            f"{server.base_url}/v1/topology",
            json={"dependencies": {"web": ["db"]}},
            headers={**auth, "X-Forwarded-For": forwarded_for},
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
    audit = httpx.get(f"{server.base_url}/v1/audit", headers=auth, timeout=10).json()
    return str(audit["items"][0]["client"])


def test_forwarded_addresses_are_believed_from_the_trusted_proxies_only(
    deployment: Deployment,
) -> None:
    """Behind a proxy the server is not told to trust, every client has the proxy's
    address (one login throttle for all); a client that is no proxy cannot choose its
    address by sending the header."""
    with serve(deployment, "untrusted") as server:
        assert _audited_address(deployment, server, "203.0.113.9") == "127.0.0.2"
    with serve(deployment, "trusted", DD0C_TRUSTED_PROXIES="127.0.0.2, 10.0.0.0/8") as server:
        assert _audited_address(deployment, server, "203.0.113.9") == "203.0.113.9"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_sigterm_stops_serve_in_order(deployment: Deployment, tmp_path: Path) -> None:
    """SIGTERM to serve alone (``docker stop`` signals PID 1 only): uvicorn shuts down,
    then serve stops its child in order (the worker finishes its batch and lets go of
    it) and cleans up. Uvicorn re-raises the signal after its shutdown; at the default
    action that ended serve there, so the child died of end-of-file mid-batch (claimed
    events waited out their 60 s lease after the restart) and serve's metrics folder
    and note stayed behind at every stop."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with serve(deployment, "sigterm", TMPDIR=str(scratch)) as server:
        wait_for(lambda: background_ready(server), 60, "background never ready", server)
        (child,) = children(server.process.pid)
        assert [p.name for p in scratch.iterdir()], "serve made no metrics folder"
        for n in range(20):
            post_and_count(deployment, server, f"term-{n}")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=40) == 0, server.log_tail()
        assert not Path(f"/proc/{child}").exists() or _state(child) == "Z", "child outlived serve"
        assert list(scratch.iterdir()) == [], "the metrics folder stayed behind"
        assert not (deployment.data_dir / "listening.json").exists()
        assert "background_process_killed" not in server.log_tail()
    # Stopped in order, the worker let go of everything it stored.
    with sqlite3.connect(deployment.db) as conn:
        conn.execute("ATTACH DATABASE ? AS queue", (str(queue_file(deployment.db)),))
        (stored_and_queued,) = conn.execute(
            "SELECT count(*) FROM queue.ingest_queue q JOIN processed_events p USING (event_id)"
        ).fetchone()
    assert stored_and_queued == 0

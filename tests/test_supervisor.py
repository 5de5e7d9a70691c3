"""The supervisor of ``serve``'s background process: restarts, and stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import structlog

from dd0c_alert import supervisor


def _exits_at_once(*_: str) -> tuple[subprocess.Popen[bytes], int]:
    """A child that ends cleanly at once, as one SIGTERMed with its process group."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    return subprocess.Popen([sys.executable, "-c", "pass"]), write_fd


def test_a_child_that_ends_while_the_service_stops_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """systemd stops a service by signalling its whole group: the child's exit is seen
    before the parent's own stop begins, and is neither reported nor restarted.

    The stop comes within the restart delay, which is made far longer than any stall
    here: a fixed 0.25 s sleep against the real 0.5 s delay failed whenever the test
    process was descheduled for a quarter second (a busy CI machine)."""
    monkeypatch.setattr(supervisor, "spawn_linked", _exits_at_once)
    monkeypatch.setattr(supervisor, "_RESTART_DELAYS", (600.0,))
    background = supervisor.BackgroundProcess()
    with structlog.testing.capture_logs() as logs:
        background.start()
        deadline = time.monotonic() + 30
        while background.alive():  # the child has ended before the stop begins
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.01)
        background.stop()
    assert [line["event"] for line in logs] == []
    assert background.restarts == 0


def test_a_child_that_dies_is_reported_and_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "spawn_linked", _exits_at_once)
    background = supervisor.BackgroundProcess()
    with structlog.testing.capture_logs() as logs:
        background.start()
        deadline = time.monotonic() + 10
        while background.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        background.stop()
    assert background.restarts >= 1
    assert "background_process_exited" in [line["event"] for line in logs]

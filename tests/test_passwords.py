"""Password hashing's bounds: argon2 work at once, per process."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dd0c_alert.web import passwords


class _Counting:
    """An argon2 stand-in that records how many hashes and checks run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def _work(self) -> None:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self._lock:
            self.running -= 1

    def hash(self, password: str) -> str:
        self._work()
        return "hashed"

    def verify(self, stored: str, password: str) -> bool:
        self._work()
        return True


def test_at_most_two_hashes_or_checks_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each takes 64 MiB: forty sign-ups at once took serve to 1.67 GB."""
    counting = _Counting()
    monkeypatch.setattr(passwords, "_hasher", counting)
    with ThreadPoolExecutor(8) as pool:
        hashes = [pool.submit(passwords.hash_password, "a password") for _ in range(4)]
        checks = [pool.submit(passwords.verify_password, "x", "a password") for _ in range(4)]
        assert [f.result() for f in hashes] == ["hashed"] * 4
        assert [f.result() for f in checks] == [True] * 4
    assert counting.most == passwords.AT_ONCE == 2

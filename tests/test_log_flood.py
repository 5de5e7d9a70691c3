"""A flood of bad requests does not flood the log (docs/operations.md, Logs): a real
``dd0c-alert serve`` answers each malformed request or unsupported upgrade, and its
log says so once a minute, not once per request."""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

from dd0c_alert.logs import RepeatFilter, Throttle
from servers import free_port, start_serve

GARBAGE = b"GARBAGE \x1b[31m\r\n\r\n"
H2C = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


def _send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(100)


def test_a_flood_of_bad_requests_writes_one_line_a_minute(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "OTEL_"))}
    env |= {"DD0C_DATA_DIR": str(tmp_path / "d"), "DD0C_SUGGEST_INTERVAL_SECONDS": "0"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    process = start_serve(env, port, log)
    try:
        for _ in range(100):
            assert _send(port, GARBAGE).startswith(b"HTTP/1.1 400")
        for _ in range(30):
            assert _send(port, H2C).startswith(b"HTTP/1.1 200")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    text = log.read_text()
    assert text.count("Invalid HTTP request received.") == 1, text[-2000:]
    assert text.count("Unsupported upgrade request.") == 1, text[-2000:]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(
    message: str, level: int = logging.WARNING, error: Exception | None = None
) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord("uvicorn.error", level, __file__, 1, message, None, exc_info)


def test_each_kind_of_server_warning_is_one_line_a_minute_with_the_count_held_back() -> None:
    clock = Clock()
    repeats = RepeatFilter(Throttle(60.0, clock))
    assert repeats.filter(_record("Invalid HTTP request received."))
    assert not any(repeats.filter(_record("Invalid HTTP request received.")) for _ in range(50))
    assert repeats.filter(_record("Exceeded concurrency limit."))  # another kind
    # each bug is its own kind: a traceback of every different one still shows
    assert repeats.filter(_record("Exception in ASGI application\n", error=KeyError("x")))
    assert repeats.filter(_record("Exception in ASGI application\n", error=ValueError("x")))
    assert not repeats.filter(_record("Exception in ASGI application\n", error=KeyError("y")))
    assert repeats.filter(_record("Started server process", logging.INFO))  # not throttled
    clock.now += 61
    again = _record("Invalid HTTP request received.")
    assert repeats.filter(again)
    assert (
        again.getMessage()
        == "Invalid HTTP request received. (50 more held back in the last minute)"
    )

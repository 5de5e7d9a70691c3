"""Every line the service writes to stderr is one JSON object (docs/operations.md,
Logs): structlog's lines, and the standard ``logging`` records of uvicorn, alembic and
httpx, which came out as bare text a log shipper reading JSON lines cannot parse."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from dd0c_alert.logs import JsonLines
from servers import free_port, start_serve

GARBAGE = b"GARBAGE \x1b[31m\r\n\r\n"


def _lines(text: str) -> list[dict[str, Any]]:
    """Each non-empty line parsed; the line itself in the failure when one is not JSON."""
    parsed = []
    for line in filter(None, text.splitlines()):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n{text[-2000:]}") from None
    return parsed


def test_every_line_serve_writes_to_stderr_is_json(tmp_path: Path) -> None:
    """The start-up banner and uvicorn's own warning (an invalid request line) are JSON
    lines with ``event`` and ``level``, uvicorn's naming its logger."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "OTEL_"))}
    env |= {"DD0C_DATA_DIR": str(tmp_path / "d"), "DD0C_SUGGEST_INTERVAL_SECONDS": "0"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    errors = tmp_path / "stderr.log"
    process = start_serve(env, port, tmp_path / "stdout.log", errors)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(GARBAGE)
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    lines = _lines(errors.read_text())
    assert all(isinstance(line.get("event"), str) and line.get("level") for line in lines)
    assert all(line.get("timestamp") for line in lines)
    events = {line["event"]: line for line in lines}
    assert events["listening"]["url"] == f"http://127.0.0.1:{port}"
    invalid = events["Invalid HTTP request received."]
    assert (invalid["level"], invalid["logger"]) == ("warning", "uvicorn.error")


def test_a_records_exception_is_in_its_line() -> None:
    """A record with an exception (uvicorn's ``Exception in ASGI application``) carries
    its traceback in ``exception``, inside the one line, as structlog's lines do."""
    out = io.StringIO()
    handler = JsonLines(out)
    try:
        raise KeyError("boom")
    except KeyError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in %s", ("ASGI",), exc_info
    )
    handler.handle(record)
    [line] = _lines(out.getvalue())
    assert line["event"] == "Exception in ASGI"
    assert (line["level"], line["logger"]) == ("error", "uvicorn.error")
    assert "KeyError: 'boom'" in line["exception"]
    assert line["exception"].startswith("Traceback")

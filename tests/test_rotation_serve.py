"""An integration's secret rotated from the command line while a sender keeps posting
to a running ``serve`` (another process, with its own cache of integrations): the new
secret is accepted at once, the old one until the overlap ends, and from then on it is
refused with ``secret_rotated`` rather than a mismatch that reads like a wrong
secret. Embedded and production alike; the server logs at DEBUG (the secret scan
reads its log file)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import cli_environment
from dd0c_alert.cli import app
from servers import free_port, start_serve
from test_smoke_custom import sign

pytestmark = pytest.mark.both_modes
runner = CliRunner()
#: At least the servers' 5 s cache of integrations, so the overlap ends exactly.
GRACE = 6
BODY = b'{"title": "Disk full", "service": "db"}'


def _json(*args: str) -> dict[str, str]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    found: dict[str, str] = json.loads(result.output)
    return found


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A running ``serve`` on the CLI's database; its base URL."""
    data = tmp_path / "data"
    overrides = cli_environment(monkeypatch, data)
    monkeypatch.setenv("DD0C_SECRET_ROTATION_GRACE_SECONDS", str(GRACE))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "OTEL_"))}
    env |= {"DD0C_DATA_DIR": str(data), "DD0C_LOG_LEVEL": "DEBUG"}
    if overrides:
        env |= {
            "DATABASE_URL": overrides["database_url"],
            "REDIS_URL": overrides["redis_url"],
            "DD0C_SECRET_KEY": overrides["secret_key"],
            "DD0C_JWT_SECRET": overrides["jwt_secret"],
        }
    runner.invoke(app, ["migrate"])  # the CLI's store is ready before serve starts
    port = free_port()
    monkeypatch.setenv("DD0C_PUBLIC_URL", f"http://127.0.0.1:{port}")  # the CLI's URLs
    process = start_serve(env, port, tmp_path / "serve.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _post(url: str, secret: str) -> str:
    response = httpx.post(url, content=BODY, headers=sign(secret, BODY), timeout=10)
    return "accepted" if response.status_code == 202 else str(response.json()["error"])


def test_the_overlap_holds_exactly_across_processes(server: str) -> None:
    tenant = _json("tenant", "create", "acme")["tenant_id"]
    made = _json("integration", "create", "--tenant", tenant, "--provider", "custom")
    integration, old = made["integration_id"], made["secret"]
    url = f"{server}/v1/wh/{tenant}/custom/{integration}"
    assert _post(url, old) == "accepted"  # the server now caches the old secret alone

    rotated = _json("integration", "rotate", "--tenant", tenant, integration)
    new, until = rotated["secret"], datetime.fromisoformat(rotated["previous_secret_valid_until"])
    assert _post(url, new) == "accepted"  # at once, though the cache knew only the old one
    assert _post(url, old) == "accepted"
    while until.timestamp() - time.time() > 0.7:  # the overlap's last second
        assert _post(url, old) == "accepted"
        time.sleep(0.3)
    time.sleep(max(0.0, until.timestamp() - time.time()) + 0.05)
    assert _post(url, old) == "secret_rotated"
    refused = httpx.post(url, content=BODY, headers=sign(old, BODY), timeout=10).json()
    assert "rotated" in refused["detail"] and until.isoformat() in refused["detail"]
    assert _post(url, new) == "accepted"
    assert _post(url, "not-the-secret-at-all") == "signature_mismatch"

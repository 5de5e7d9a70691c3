"""A real ``dd0c-alert serve`` on the database the CLI of the test process uses, for
tests that set a tenant up from the command line and meet the server over HTTP, as
an operator and a sender would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import cli_environment
from dd0c_alert.cli import app
from servers import free_port, start_serve

runner = CliRunner()


def cli_json(*args: str) -> dict[str, str]:
    """``dd0c-alert ARGS --json``, run in this process, parsed."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    found: dict[str, str] = json.loads(result.output)
    return found


@contextlib.contextmanager
def serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``serve`` on a free port, logging at DEBUG to ``tmp_path/serve.log`` (the secret
    scan reads it), on the CLI's data folder or PostgreSQL database; its base URL.
    No other ``DD0C_`` setting of the test process reaches the server."""
    data = tmp_path / "data"
    overrides = cli_environment(monkeypatch, data)
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
    env["DD0C_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    process = start_serve(env, port, tmp_path / "serve.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

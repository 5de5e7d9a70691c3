"""Headless set-up: ``user create`` and ``api-key create|list|revoke``; what they make
works through the API (login, key scope, revocation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from conftest import cli_environment
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.web.app import create_app

pytestmark = pytest.mark.both_modes
runner = CliRunner()
PASSWORD = "correct horse battery staple 9"


def cli(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def ok(*args: str, stdin: str | None = None) -> str:
    result = cli(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_user_create_then_login_and_api_keys_by_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = cli_environment(monkeypatch, tmp_path / "data")
    tenant = json.loads(ok("tenant", "create", "acme", "--json"))["tenant_id"]
    made = json.loads(
        ok("user", "create", "--tenant", tenant, "--email", "ops@example.com",
           "--role", "owner", "--password-stdin", "--json", stdin=PASSWORD + "\n")
    )  # fmt: skip
    assert made["role"] == "owner"
    weak = cli("user", "create", "--tenant", tenant, "--email", "b@example.com",
               "--password-stdin", stdin="password\n")  # fmt: skip
    assert weak.exit_code != 0
    read_key = json.loads(
        ok(
            "api-key",
            "create",
            "--tenant",
            tenant,
            "--name",
            "grafana",
            "--scope",
            "read",
            "--json",
        )
    )
    listed = ok("api-key", "list", "--tenant", tenant)
    assert "grafana" in listed and read_key["key"] not in listed
    runtime = build_runtime(
        Settings(data_dir=tmp_path / "data", secret_key="").model_copy(update=overrides)
    )
    with TestClient(create_app(runtime)) as client:
        login = client.post(
            "/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        reader = {"Authorization": f"Bearer {read_key['key']}"}
        assert client.get("/v1/incidents", headers=reader).status_code == 200
        assert (
            client.put("/v1/topology", json={"dependencies": {}}, headers=reader).status_code == 403
        )
        ok("api-key", "revoke", "--tenant", tenant, read_key["id"])
        # Serving processes cache a key for 10 s: what they will read is revoked.
        record = runtime.store.accounts().api_key(read_key["key"])
        assert record is not None and record.revoked_at is not None
        runtime.stop()

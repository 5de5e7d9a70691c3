"""Roles split one process's work (design §1): each role's process serves only its part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from typer.main import get_command

from conftest import TenantHandle
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app as cli_app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import ROLES
from dd0c_alert.web.app import create_app
from servers import free_port
from test_smoke_custom import sign

ALERT = json.dumps({"title": "Disk full", "service": "db", "severity": "critical"}).encode()


def test_every_role_is_a_command_and_serve_runs_them_all() -> None:
    commands = set(get_command(cli_app).commands)  # type: ignore[attr-defined]
    assert commands >= ROLES
    assert {"serve", "migrate"} <= commands


def test_unknown_role_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown roles: paging"):
        build_runtime(settings, roles=frozenset({"paging"}))


def test_ingest_role_takes_webhooks_and_serves_no_api(
    settings: Settings, tenant: TenantHandle
) -> None:
    tenant.integration("custom", "s3cret")
    ingest = build_runtime(settings, roles=frozenset({"ingest"}))
    assert ingest.worker is None
    with TestClient(create_app(ingest)) as client:
        response = client.post(
            f"/v1/wh/{tenant.id}/custom",
            content=ALERT,
            headers=sign("s3cret", ALERT),
        )
        assert response.status_code == 202, response.text
        assert client.get("/v1/alerts", headers=tenant.auth).status_code == 404
        assert client.get("/healthz").status_code == 200
        assert "/v1/wh/{tenant_id}/{provider}" in client.get("/openapi.json").json()["paths"]
    assert ingest.queue.depth().messages == 1  # queued, nobody correlates here


def test_api_role_serves_the_api_and_takes_no_webhooks(
    settings: Settings, tenant: TenantHandle
) -> None:
    tenant.integration("custom", "s3cret")
    api = build_runtime(settings, roles=frozenset({"api"}))
    assert api.worker is None
    with TestClient(create_app(api)) as client:
        response = client.post(
            f"/v1/wh/{tenant.id}/custom",
            content=ALERT,
            headers=sign("s3cret", ALERT),
        )
        assert response.status_code == 404
        assert client.get("/v1/alerts", headers=tenant.auth).status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert not any(path.startswith("/v1/wh/") for path in paths)


@pytest.mark.parametrize(("role", "loop"), [("correlate", "worker"), ("cron", "scheduler")])
def test_headless_roles_serve_only_health_and_it_checks_their_loop(
    settings: Settings, tenant: TenantHandle, role: str, loop: str
) -> None:
    settings = settings.model_copy(update={"suggest_interval_seconds": 3600})
    runtime = build_runtime(settings, roles=frozenset({role}))
    with TestClient(create_app(runtime)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"][loop] == "ok"
        assert client.get("/v1/alerts", headers=tenant.auth).status_code == 404
        assert client.post(f"/v1/wh/{tenant.id}/custom", content=ALERT).status_code == 404
        stopped = runtime.worker if role == "correlate" else runtime.scheduler
        assert stopped is not None
        stopped.stop()
        assert client.get("/readyz").status_code == 503


@pytest.mark.parametrize(
    ("command", "unset", "says"),
    [
        (["ingest", "--port"], "DD0C_JWT_SECRET", "error: DD0C_JWT_SECRET must be set"),
        (["api", "--port"], "DD0C_SECRET_KEY", "error: DD0C_SECRET_KEY must be set"),
        (["correlate"], "DD0C_SECRET_KEY", "error: DD0C_SECRET_KEY must be set"),
    ],
)
def test_a_role_without_a_shared_key_says_so_before_it_announces_itself(
    tmp_path: Path, command: list[str], unset: str, says: str
) -> None:
    """An ingest or api role on PostgreSQL without DD0C_JWT_SECRET or DD0C_SECRET_KEY
    bound its port and logged ``listening``, then exited with a bare sentence: a log
    watcher saw a role start that never served. The database need not answer: the
    keys are checked first."""
    keys = {"DD0C_SECRET_KEY": Fernet.generate_key().decode(), "DD0C_JWT_SECRET": "j" * 48}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD0C_")}
    env |= {k: v for k, v in keys.items() if k != unset}
    env |= {
        "DATABASE_URL": f"postgresql://dd0c_app@127.0.0.1:{free_port()}/dd0c",
        "DD0C_DATA_DIR": str(tmp_path / "data"),
    }
    args = [*command, str(free_port())] if command[-1] == "--port" else command
    done = subprocess.run(
        [sys.executable, "-m", "dd0c_alert", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "listening" not in done.stderr, done.stderr
    assert done.stderr.startswith(says), done.stderr

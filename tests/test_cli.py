"""The admin CLI (`dd0c-alert tenant|integration|dlq …`), driven in-process by typer's
CliRunner against a temporary data folder (``DD0C_DATA_DIR``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

import dd0c_alert.app as app_module
import dd0c_alert.cli as cli_module
import dd0c_alert.cli_serve as cli_serve
from conftest import drain, embedded_data_dir
from dd0c_alert.app import build_runtime, open_store
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.storage.sqlite_queue import queue_file
from dd0c_alert.supervisor import BACKGROUND_ROLES, child_environment
from dd0c_alert.web.app import create_app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's Settings() read the environment: point it at a fresh folder only."""
    return embedded_data_dir(tmp_path, monkeypatch)


@pytest.fixture
def own_settings(data_dir: Path) -> Settings:
    """The CLI's folder, for runtimes the test builds itself."""
    return Settings(data_dir=data_dir, worker_poll_seconds=0.02, secret_key="")


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, f"dd0c-alert {' '.join(args)} -> {result.exit_code}:\n" + (
        result.output
    )
    return result.output


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def flat(text: str) -> str:
    """Error text without the rich box drawing and its line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def new_tenant(name: str = "acme") -> str:
    tenant_id: str = ok_json("tenant", "create", name)["tenant_id"]
    return tenant_id


# --- tenants -----------------------------------------------------------------------------


def test_tenant_create_json_prints_id_and_a_working_api_key(data_dir: Path) -> None:
    created = ok_json("tenant", "create", "acme")
    assert set(created) == {"tenant_id", "api_key"}
    assert created["api_key"].startswith("dd0c_")
    store = open_store(Settings())
    assert store.tenant_for_api_key(created["api_key"]) == created["tenant_id"]
    assert ok_json("tenant", "list") == [{"tenant_id": created["tenant_id"], "name": "acme"}]
    assert (data_dir / "dd0c.db").exists()


def test_a_tenant_needs_a_name(data_dir: Path) -> None:
    for name in ("", "  "):
        result = cli("tenant", "create", name)
        assert result.exit_code == 2, result.output
        assert "a tenant needs a name" in flat(result.output)
    assert ok_json("tenant", "list") == []


def test_the_health_port_of_the_background_roles_says_it_serves_metrics() -> None:
    for role in ("correlate", "notify", "cron"):
        assert "/healthz, /readyz and /metrics" in flat(cli(role, "--help").output), role


def test_tenant_create_text_shows_the_key_once(data_dir: Path) -> None:
    output = ok("tenant", "create", "acme")
    assert "tenant acme: " in output
    assert re.search(r"API key \(shown once, store it now\): dd0c_\S+", output)


# --- integrations ------------------------------------------------------------------------


def test_integration_create_json(data_dir: Path) -> None:
    tenant = new_tenant()
    created = ok_json(
        "integration", "create", "--tenant", tenant, "--provider", "custom", "--secret", "s"
    )
    assert set(created) == {"integration_id", "webhook_url", "secret", "setup"}
    assert created["secret"] == "s" and created["webhook_url"] in created["setup"]
    assert created["webhook_url"] == (
        f"http://127.0.0.1:8080/v1/wh/{tenant}/custom/{created['integration_id']}"
    )
    [integration] = open_store(Settings()).integrations_for(tenant, "custom")
    assert (integration.id, integration.secret) == (created["integration_id"], "s")


def test_integration_secret_is_generated_and_encrypted_at_rest(data_dir: Path) -> None:
    tenant = new_tenant()
    created = ok_json("integration", "create", "--tenant", tenant, "--provider", "grafana")
    secret = created["secret"]
    assert len(secret) >= 32
    db = sqlite3.connect(data_dir / "dd0c.db")
    try:
        (stored,) = db.execute(
            "SELECT secret_encrypted FROM integrations WHERE id = ?", (created["integration_id"],)
        ).fetchone()
    finally:
        db.close()
    assert secret not in str(stored)


def test_webhook_url_uses_the_public_url(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD0C_PUBLIC_URL", "https://alerts.example.com/")
    tenant = new_tenant()
    created = ok_json("integration", "create", "--tenant", tenant, "--provider", "alertmanager")
    assert created["webhook_url"] == (
        f"https://alerts.example.com/v1/wh/{tenant}/alertmanager/{created['integration_id']}"
    )


def test_integration_create_text_for_alertmanager_prints_a_receiver(data_dir: Path) -> None:
    tenant = new_tenant()
    output = ok(
        "integration", "create", "--tenant", tenant, "--provider", "alertmanager", "--secret", "s3"
    )
    url = re.search(r"webhook URL: (\S+)", output)
    assert url is not None
    assert url.group(1).startswith(f"http://127.0.0.1:8080/v1/wh/{tenant}/alertmanager/")
    assert "secret (shown once): s3" in output
    assert "webhook_configs:" in output
    assert f"- url: {url.group(1)}" in output
    assert "credentials: s3" in output


def test_integration_create_text_for_custom_prints_a_curl_line(data_dir: Path) -> None:
    tenant = new_tenant()
    output = ok("integration", "create", "--tenant", tenant, "--provider", "custom")
    url = re.search(r"webhook URL: (\S+)", output)
    assert url is not None
    curl = [line for line in output.splitlines() if line.startswith("curl ")]
    assert len(curl) == 1
    assert f"'{url.group(1)}'" in curl[0]
    assert "X-DD0C-Signature" in output


def test_unknown_provider_is_refused(data_dir: Path) -> None:
    tenant = new_tenant()
    result = cli("integration", "create", "--tenant", tenant, "--provider", "nagios")
    assert result.exit_code != 0
    message = flat(result.output)
    assert "unknown provider; choose from" in message
    assert "alertmanager" in message
    assert open_store(Settings()).integrations_for(tenant, "nagios") == []


def test_unknown_tenant_is_refused(data_dir: Path) -> None:
    result = cli("integration", "create", "--tenant", "nope", "--provider", "custom")
    assert result.exit_code != 0
    assert "no tenant 'nope'" in flat(result.output)


# --- dead letters ------------------------------------------------------------------------


NOT_AN_ALERT = b'{"hello": 1}'


def sign(secret: str, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-DD0C-Timestamp": stamp, "X-DD0C-Signature": f"v1={digest}"}


def dead_letter_one(settings: Settings, tenant: str) -> str:
    """POST a correctly signed custom body that is JSON but no alert, through a running
    runtime, and wait until its worker dead-letters it; return the event id."""
    ok("integration", "create", "--tenant", tenant, "--provider", "custom", "--secret", "s3cret")
    runtime = build_runtime(settings)
    with TestClient(create_app(runtime)) as client:
        response = client.post(
            f"/v1/wh/{tenant}/custom", content=NOT_AN_ALERT, headers=sign("s3cret", NOT_AN_ALERT)
        )
        assert response.status_code == 202, response.text
        drain(runtime)
    # Leaving the block stopped the worker: a replayed event now waits in the queue.
    event_id: str = response.json()["event_id"]
    return event_id


def queued_event_ids(data_dir: Path) -> list[str]:
    db = sqlite3.connect(queue_file(data_dir / "dd0c.db"))
    try:
        return [row[0] for row in db.execute("SELECT event_id FROM ingest_queue")]
    finally:
        db.close()


def test_dlq_list_show_replay(data_dir: Path, own_settings: Settings) -> None:
    tenant = new_tenant()
    event_id = dead_letter_one(own_settings, tenant)

    [row] = ok_json("dlq", "list")
    assert row["event_id"] == event_id
    assert row["tenant_id"] == tenant
    assert row["provider"] == "custom"
    assert row["error"] == "PayloadError: an alert needs a non-empty 'title'"
    assert row["replayed_at"] is None
    assert row["attempts"] == 1  # a payload error is permanent: not retried
    assert ok_json("dlq", "list", "--tenant", "someone-else") == []
    assert (
        ok("dlq", "list", "--tenant", "someone-else") == "no dead letters of tenant someone-else\n"
    )
    listing = ok("dlq", "list")
    assert row["id"] in listing
    assert "dead" in listing
    assert "an alert needs a non-empty 'title'" in listing

    shown = ok("dlq", "show", row["id"])
    assert f"event {event_id}  tenant {tenant}  provider custom" in shown
    assert "error: PayloadError: an alert needs a non-empty 'title'" in shown
    assert f"body: {NOT_AN_ALERT.decode()}" in shown
    # The headers, as received minus credentials, and a note of what was taken out.
    assert "x-dd0c-timestamp" in shown
    assert "x-dd0c-signature" not in shown.replace("header:x-dd0c-signature", "")
    assert '"x-dd0c-redacted": "header:x-dd0c-signature"' in shown
    assert ok("dlq", "show", event_id) == shown  # by event id too

    assert ok("dlq", "replay", row["id"]).strip() == f"requeued {event_id}"
    [replayed] = ok_json("dlq", "list")
    assert replayed["id"] == row["id"]
    assert replayed["replayed_at"] is not None
    assert "replayed " in ok("dlq", "list")
    assert queued_event_ids(data_dir) == [event_id]

    # A worker picks it up again; the same error dead-letters it again, once.
    again = build_runtime(own_settings)
    assert again.worker is not None
    assert again.worker.run_once() == 1
    assert queued_event_ids(data_dir) == []
    [dead_again] = ok_json("dlq", "list")
    assert dead_again["event_id"] == event_id
    assert dead_again["error"] == row["error"]
    assert dead_again["attempts"] == 1  # replay starts the attempts afresh
    assert dead_again["replayed_at"] is None  # dead again, replayable again
    assert dead_again["failed_at"] >= row["failed_at"]


def test_dlq_unknown_ids_are_refused(data_dir: Path) -> None:
    new_tenant()
    for command in ("show", "replay"):
        result = cli("dlq", command, "01NOSUCHDEADLETTER")
        assert result.exit_code != 0
        assert "no dead letter '01NOSUCHDEADLETTER'" in flat(result.output)
    assert ok_json("dlq", "list") == []


def test_dlq_list_refuses_a_limit_below_one(data_dir: Path, own_settings: Settings) -> None:
    tenant = new_tenant()
    dead_letter_one(own_settings, tenant)
    assert len(ok_json("dlq", "list", "--limit", "1")) == 1
    for limit in ("0", "-1"):  # -1 listed all rows but the last
        result = cli("dlq", "list", "--limit", limit)
        assert result.exit_code == 2, result.output
        assert "--limit" in flat(result.output)


def test_credentials_are_not_stored_with_the_event(data_dir: Path, own_settings: Settings) -> None:
    """Token auth headers are stripped before the queue, so neither the queue row nor
    the dead letter (nor `dlq show`) carries the secret."""
    tenant = new_tenant()
    secret = "am-token-that-must-not-leak-0123456789"
    ok(
        "integration",
        "create",
        "--tenant",
        tenant,
        "--provider",
        "alertmanager",
        "--secret",
        secret,
    )
    basic = base64.b64encode(f"alertmanager:{secret}".encode()).decode()
    attempts = [
        {"Authorization": f"Bearer {secret}"},
        {"X-DD0C-Token": secret},
        {"Authorization": f"Basic {basic}"},
        {"Authorization": f"Bearer {secret}", "X-DD0C-Token": secret, "Cookie": "session=1"},
    ]
    # Ingest only (no worker), so the queue rows can be read before processing.
    ingest_only = build_runtime(own_settings, roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(ingest_only)) as receiver:
        for headers in attempts:
            response = receiver.post(
                f"/v1/wh/{tenant}/alertmanager",
                content=NOT_AN_ALERT,
                headers={**headers, "X-Trace": "kept"},
            )
            assert response.status_code == 202, response.text

    db = sqlite3.connect(queue_file(data_dir / "dd0c.db"))
    try:
        queued = [json.loads(row[0]) for row in db.execute("SELECT headers FROM ingest_queue")]
    finally:
        db.close()
    assert len(queued) == len(attempts)
    for headers in queued:
        assert headers["x-trace"] == "kept"
        assert not {"authorization", "x-dd0c-token", "cookie"} & set(headers)
        assert secret not in json.dumps(headers)

    worker = build_runtime(own_settings)
    assert worker.worker is not None
    handled = 0
    while batch := worker.worker.run_once():  # batches start small and grow
        handled += batch
    assert handled == len(attempts)
    rows = ok_json("dlq", "list")
    assert len(rows) == len(attempts)
    for row in rows:
        assert row["error"].startswith("PayloadError: not an Alertmanager webhook")
        dead = worker.store.get_dead_letter(row["id"])
        assert dead is not None
        assert not {"authorization", "x-dd0c-token", "cookie"} & set(dead.event.headers)
        shown = ok("dlq", "show", row["id"])
        assert secret not in shown
        assert basic not in shown

    # Nowhere in the database, in clear: not in queue, dead letters or integrations.
    for path in data_dir.glob("dd0c.db*"):
        assert secret.encode() not in path.read_bytes(), path.name


def test_the_cli_starts_without_the_service_stack() -> None:
    """``dd0c-alert --help`` must start fast: the heavy stack (database, web, Slack,
    settings) is imported by the commands that use it, not when the CLI loads."""
    probe = (
        "import sys, dd0c_alert.cli as cli; "
        "heavy = {'sqlalchemy', 'fastapi', 'slack_sdk', 'pydantic_settings', 'alembic'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_serve_background_does_not_migrate_again(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve``'s parent migrates before it starts the child; the child migrating again
    held SQLite's write lock for about half a second while webhooks were arriving (their
    p99 in the race went from ~75 ms to ~350 ms)."""
    open_store(Settings())  # the parent's start: migrated, statistics taken

    def refuse(*_: object) -> None:
        raise AssertionError("the child must not migrate or analyse the database")

    monkeypatch.setattr(app_module, "upgrade", refuse)
    monkeypatch.setattr(app_module, "refresh_statistics", refuse)
    runtime = build_runtime(Settings(), roles=BACKGROUND_ROLES, migrate_schema=False)
    assert runtime.worker is not None

    asked: dict[str, object] = {}

    class Built(Exception):
        pass

    def capture(settings: Settings, **kwargs: object) -> None:
        asked.update(kwargs)
        raise Built

    monkeypatch.setattr(cli_module, "build_runtime", capture)
    read_fd, _write_fd = os.pipe()  # write end left open: the parent link waits on it
    with pytest.raises(Built):
        cli_serve.serve_background(wake_fd=read_fd)
    assert asked["migrate_schema"] is False


def test_every_long_running_process_freezes_its_start_up_heap_and_collects_less_often() -> None:
    """Run in a fresh interpreter: the collector's settings are process-wide."""
    code = (
        "import gc, json\n"
        "from dd0c_alert.cli_serve import freeze_heap\n"
        "freeze_heap()\n"
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    (young, older, oldest), frozen = json.loads(out)
    assert young == cli_serve._GC_YOUNG_THRESHOLD > 700
    assert (older, oldest) == (10, 10)  # Python's own, kept
    assert frozen > 10_000  # modules and the rest of start-up


def test_serves_children_start_with_two_malloc_arenas_unless_the_operator_chose() -> None:
    """glibc's per-thread arenas each keep freed memory in pieces; the worker's process
    grew faster with them (bench/README.md). An operator's own setting wins."""
    assert child_environment({"PATH": "/usr/bin"}) == {
        "PATH": "/usr/bin",
        "MALLOC_ARENA_MAX": "2",
    }
    assert child_environment({"MALLOC_ARENA_MAX": "8"})["MALLOC_ARENA_MAX"] == "8"

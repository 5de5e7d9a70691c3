"""The notification commands of the CLI (`dd0c-alert slack|deliveries|routes …`), driven
in-process by typer's CliRunner against a fresh database of the current backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from conftest import cli_environment
from dd0c_alert.app import open_store
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.route_documents import prepare
from dd0c_alert.storage.notify_settings import SqlNotifySettings
from dd0c_alert.storage.outbox import MAIL, Planned, SqlOutbox
from stand_ins.slack_api import SlackStandIn

pytestmark = pytest.mark.both_modes
runner = CliRunner()
TOKEN = "xoxb-test-token"
SIGNING = "cli-signing-secret-42"
HOOK_SECRET = "cli-route-hook-secret"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(tokens=(TOKEN,)) as stand_in:
        yield stand_in


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slack: SlackStandIn) -> None:
    cli_environment(monkeypatch, tmp_path / "data")
    monkeypatch.delenv("DD0C_PUBLIC_URL", raising=False)
    monkeypatch.setenv("DD0C_SLACK_API_URL", slack.base_url)


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, f"dd0c-alert {' '.join(args)}:\n{result.output}"
    return result.output


def refused(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code != 0, result.output
    return " ".join(result.output.replace("│", " ").split())


def new_tenant() -> str:
    tenant_id: str = json.loads(ok("tenant", "create", "acme", "--json"))["tenant_id"]
    return tenant_id


def outbox() -> SqlOutbox:
    return open_store(Settings()).outbox()


def notify_settings() -> SqlNotifySettings:
    return open_store(Settings()).notify_settings()


def test_slack_manifest_points_at_the_public_url(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = json.loads(ok("slack", "manifest", "--public-url", "https://alerts.example.com/"))
    assert manifest["settings"]["interactivity"]["request_url"] == (
        "https://alerts.example.com/v1/slack/interactions"
    )
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/dd0c"
    assert command["url"] == "https://alerts.example.com/v1/slack/commands"
    assert "chat:write" in manifest["oauth_config"]["scopes"]["bot"]
    monkeypatch.setenv("DD0C_PUBLIC_URL", "https://dd0c.internal")
    default = json.loads(ok("slack", "manifest"))
    assert (
        default["features"]["slash_commands"][0]["url"] == "https://dd0c.internal/v1/slack/commands"
    )


def test_slack_configure_stores_encrypted_settings_and_prints_no_secret(env: None) -> None:
    tenant = new_tenant()
    args = ["--tenant", tenant, "--bot-token", TOKEN, "--signing-secret", SIGNING]
    output = ok("slack", "configure", *args, "--channel", "#oncall", "--json")
    assert TOKEN not in output and SIGNING not in output
    assert json.loads(output) == {
        "configured": True,
        "default_channel": "#oncall",
        "team_id": "T00000001",
        "bot_token": "set",
        "signing_secret": "set",
        "token_check": "ok",
    }
    stored = notify_settings().slack(tenant)
    assert stored is not None and stored.signing_secret == SIGNING
    assert stored.bot_token == TOKEN
    text = ok("slack", "configure", *args, "--channel", "C0123ABCD")
    assert "default channel C0123ABCD" in text and TOKEN not in text

    assert "default_channel" in refused("slack", "configure", *args, "--channel", "oncall")
    assert "no tenant" in refused(
        "slack", "configure", "--tenant", "nope", "--bot-token", TOKEN,
        "--signing-secret", SIGNING, "--channel", "#x",
    )  # fmt: skip
    bad = ["--tenant", tenant, "--bot-token", "xoxb-wrong", "--signing-secret", SIGNING]
    assert "invalid_auth" in refused("slack", "configure", *bad, "--channel", "#oncall")
    still = notify_settings().slack(tenant)
    assert still is not None and still.bot_token == TOKEN


def test_slack_secrets_can_stay_off_the_command_line(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the command line a bot token lands in the shell's history and in ``ps`` for
    every user of the machine: it may come from the environment, or be asked for."""
    tenant = new_tenant()
    monkeypatch.setenv("DD0C_SLACK_BOT_TOKEN", TOKEN)
    asked = runner.invoke(
        app,
        ["slack", "configure", "--tenant", tenant, "--channel", "#oncall", "--json"],
        input=f"{SIGNING}\n",
    )
    assert asked.exit_code == 0, asked.output
    assert "Signing secret:" in asked.output and SIGNING not in asked.output  # not echoed
    assert "Bot User OAuth Token" not in asked.output  # the environment's was taken
    stored = notify_settings().slack(tenant)
    assert stored is not None and (stored.bot_token, stored.signing_secret) == (TOKEN, SIGNING)


def test_routes_list_in_order_without_secrets(env: None) -> None:
    tenant = new_tenant()
    assert "no routes" in ok("routes", "list", "--tenant", tenant)
    box = notify_settings()
    hook = {"type": "webhook", "url": "https://hooks.example.com/x", "secret": HOOK_SECRET}
    box.save_route(
        tenant,
        prepare(
            {"name": "db", "matchers": '{service="db"}', "destinations": [hook], "continue": True}
        ),
    )
    box.save_route(
        tenant, prepare({"name": "rest", "destinations": [{"type": "slack", "channel": "#all"}]})
    )
    text = ok("routes", "list", "--tenant", tenant)
    assert HOOK_SECRET not in text
    lines = text.splitlines()
    assert lines[0].startswith(
        '1. db {service="db"} -> webhook https://hooks.example.com/x (continue)'
    )
    assert lines[1].startswith("2. rest {} -> slack #all")
    listed = ok("routes", "list", "--tenant", tenant, "--json")
    assert HOOK_SECRET not in listed and "secret_encrypted" not in listed
    assert [r["name"] for r in json.loads(listed)] == ["db", "rest"]


def _failed_mail(tenant: str) -> str:
    box, now = outbox(), datetime.now(UTC)
    assert box.plan(tenant, [], [Planned("inc1", "email", "a@example.com", MAIL, "opened")], now)
    [mail] = box.lease_due(tenant, now, 10, timedelta(minutes=5))
    box.finish(mail, ok=False, latency_ms=5.0, error="550 no such user", at=now)
    return mail.id


def test_deliveries_list_and_replay(env: None) -> None:
    tenant = new_tenant()
    assert "no deliveries" in ok("deliveries", "list", "--tenant", tenant)
    delivery_id = _failed_mail(tenant)
    text = ok("deliveries", "list", "--tenant", tenant)
    assert delivery_id in text and "failed" in text and "550 no such user" in text
    items: list[dict[str, Any]] = json.loads(
        ok("deliveries", "list", "--tenant", tenant, "--status", "failed", "--json")
    )
    assert [d["id"] for d in items] == [delivery_id]
    assert (
        json.loads(ok("deliveries", "list", "--tenant", tenant, "--status", "pending", "--json"))
        == []
    )
    assert "status must be one of" in refused(
        "deliveries", "list", "--tenant", tenant, "--status", "lost"
    )

    assert f"delivery {delivery_id}: pending" in ok(
        "deliveries", "replay", delivery_id, "--tenant", tenant
    )
    assert (
        outbox().list_deliveries(tenant, 10, None, status="pending").items[0]["id"] == delivery_id
    )
    assert "no delivery" in refused("deliveries", "replay", "nope", "--tenant", tenant)
    other = json.loads(ok("tenant", "create", "other", "--json"))["tenant_id"]
    assert "no delivery" in refused("deliveries", "replay", delivery_id, "--tenant", other)

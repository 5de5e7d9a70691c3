"""Changes made from the command line are in the tenant's audit log, one entry each,
with the API's action names, the command's user as actor and no secret: the CLI
changed integrations, keys, users, topology and Slack settings with no trace."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest

from dd0c_alert.app import open_store
from dd0c_alert.config import Settings
from test_notify_cli import (  # noqa: F401 (fixtures)
    SIGNING,
    TOKEN,
    _failed_mail,
    env,
    new_tenant,
    ok,
    slack,
)

pytestmark = pytest.mark.both_modes


def _audit(tenant: str) -> list[dict[str, Any]]:
    """The tenant's audit entries, oldest first."""
    page = (
        open_store(Settings())
        .product()
        .list_audit(tenant, action=None, actor=None, since=None, until=None, limit=200, cursor=None)
    )
    return list(reversed(page.items))


def test_every_change_from_the_cli_leaves_one_audit_entry(env: None, tmp_path: Path) -> None:  # noqa: F811
    tenant = new_tenant()
    made = json.loads(
        ok("integration", "create", "--tenant", tenant, "--provider", "custom", "--json")
    )
    integration = made["integration_id"]
    ok("integration", "disable", "--tenant", tenant, integration)
    ok("integration", "enable", "--tenant", tenant, integration)
    rotated = json.loads(ok("integration", "rotate", "--tenant", tenant, integration, "--json"))
    ok("integration", "delete", "--tenant", tenant, integration, "--yes")
    key = json.loads(ok("api-key", "create", "--tenant", tenant, "--name", "ci", "--json"))
    ok("api-key", "revoke", "--tenant", tenant, key["id"])
    ok("api-key", "revoke", "--tenant", tenant, key["id"])  # again: nothing changes
    user = json.loads(
        ok("user", "create", "--tenant", tenant, "--email", "ops@example.com", "--role",
           "admin", "--json")
    )  # fmt: skip
    topology = tmp_path / "topology.json"
    topology.write_text('{"api": ["db"]}')
    ok("topology", "import", "--tenant", tenant, str(topology))
    ok("slack", "configure", "--tenant", tenant, "--bot-token", TOKEN,
       "--signing-secret", SIGNING, "--channel", "#oncall")  # fmt: skip
    delivery = _failed_mail(tenant)
    ok("deliveries", "replay", delivery, "--tenant", tenant)

    entries = _audit(tenant)
    assert [(e["action"], e["target_id"], e["detail"]) for e in entries] == [
        ("tenant.create", tenant, {"name": "acme"}),
        ("integration.create", integration, {"provider": "custom", "name": "custom"}),
        ("integration.update", integration, {"enabled": False}),
        ("integration.update", integration, {"enabled": True}),
        ("integration.update", integration, {"rotate_secret": True}),
        ("integration.delete", integration, {"provider": "custom", "name": "custom"}),
        ("api_key.create", key["id"], {"name": "ci", "scope": "read"}),
        ("api_key.revoke", key["id"], {}),
        (
            "user.add",
            user["user_id"],
            {"email": "ops@example.com", "role": "admin", "password_set": False},
        ),
        ("topology.replace", tenant, {"services": 1}),
        ("slack.configure", tenant, {"default_channel": "#oncall"}),
        ("delivery.replay", delivery, {}),
    ]
    assert {(e["actor"], e["client"]) for e in entries} == {(f"cli:{getpass.getuser()}", "cli")}
    text = json.dumps(entries, default=str)
    for secret in (made["secret"], rotated["secret"], key["key"], TOKEN, SIGNING):
        assert secret not in text

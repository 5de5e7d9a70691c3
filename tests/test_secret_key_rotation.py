"""Changing the key secrets are stored under: several keys in DD0C_SECRET_KEY, and
``dd0c-alert secrets re-encrypt`` (both modes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from typer.testing import CliRunner

from conftest import cli_environment
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline import route_documents
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.secrets import SecretBox

HOOK = "whsec-rotation-hook"
TOKEN = "xoxb-rotation-token"
SIGNING = "rotation-signing-secret"
INTEGRATION = "rotation-integration-secret"


def _runtime(monkeypatch: pytest.MonkeyPatch, key: str) -> Runtime:
    monkeypatch.setenv("DD0C_SECRET_KEY", key)
    return build_runtime(Settings())


def _secrets(runtime: Runtime, tenant_id: str) -> set[str]:
    """Every secret the tenant stores, decrypted with the runtime's key."""
    [integration] = runtime.store.product().list_integrations(tenant_id)
    slack = runtime.notify_settings.slack(tenant_id)
    assert slack is not None
    [route] = runtime.notify_settings.routes_for_sending(tenant_id)
    hooks = {d["secret"] for d in route["destinations"] if d["type"] == "webhook"}
    return {integration.secret, slack.bot_token, slack.signing_secret, *hooks}


@pytest.mark.both_modes
def test_a_new_key_in_front_then_re_encrypt_then_the_old_key_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_environment(monkeypatch, tmp_path / "data")
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = _runtime(monkeypatch, old)
    tenant = before.store.create_tenant("acme").id
    before.store.create_integration(tenant, "custom", "custom", INTEGRATION)
    before.notify_settings.put_slack(
        tenant, bot_token=TOKEN, signing_secret=SIGNING, default_channel="#oncall"
    )
    hook = {"type": "webhook", "url": "https://hooks.example.com/x", "secret": HOOK}
    route = route_documents.prepare({"name": "hooks", "destinations": [hook]})
    before.notify_settings.save_route(tenant, route)
    stored = {INTEGRATION, TOKEN, SIGNING, HOOK}

    both = _runtime(monkeypatch, f"{new},{old}")  # every process, before re-encrypting
    assert _secrets(both, tenant) == stored
    done = CliRunner().invoke(app, ["secrets", "re-encrypt"])
    assert done.exit_code == 0, done.output
    assert "4 secrets encrypted with the first key" in done.output

    assert _secrets(_runtime(monkeypatch, new), tenant) == stored
    with pytest.raises(InvalidToken):
        _secrets(_runtime(monkeypatch, old), tenant)  # the old key reads nothing now


def test_a_key_list_with_a_wrong_key_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_environment(monkeypatch, tmp_path / "data")
    monkeypatch.setenv("DD0C_SECRET_KEY", f"{Fernet.generate_key().decode()},not-a-key")
    with pytest.raises(ValueError, match="not a Fernet key"):
        Settings()


def test_the_key_file_may_hold_the_new_key_above_the_old(tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = SecretBox(old).encrypt("s3cret")
    key_file = tmp_path / "secret.key"
    key_file.write_text(f"{new.decode()}\n{old.decode()}\n")
    box = SecretBox.from_config("", key_file)
    assert box.decrypt(token) == "s3cret"
    assert SecretBox(new).decrypt(box.reencrypt(token)) == "s3cret"


@pytest.mark.both_modes
def test_with_the_key_lost_rotating_gives_an_integration_a_secret_the_new_key_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/operations.md: without the key, every integration needs a new secret
    (`integration rotate`). The rotation kept the old secret as the previous one and
    read it back, which the new key cannot: the way out failed like everything else."""
    cli_environment(monkeypatch, tmp_path / "data")
    lost, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = _runtime(monkeypatch, lost)
    tenant = before.store.create_tenant("acme").id
    made = before.store.create_integration(tenant, "custom", "custom", INTEGRATION)

    after = _runtime(monkeypatch, new)
    rotated = CliRunner().invoke(
        app, ["integration", "rotate", "--tenant", tenant, made.id, "--json"]
    )
    assert rotated.exit_code == 0, rotated.output
    secret = json.loads(rotated.output)["secret"]
    integration = after.store.product().get_integration(tenant, made.id)
    assert integration is not None
    # The old secret can prove nothing to a key that cannot read it: no grace for it.
    assert integration.secrets_at(datetime.now(UTC)) == [secret]

"""First contact from the command line: integrations listed, disabled, enabled, rotated
and deleted with the API's rules; a public URL that misses the local server is named;
``demo`` says which tenant and key to use; the Alertmanager snippet is a complete,
valid alertmanager.yml."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from conftest import drain
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.demo import run_demo
from dd0c_alert.local_server import recorded
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.setup_snippets import snippet
from dd0c_alert.storage.ports import AlertFilter
from dd0c_alert.web.app import create_app
from servers import free_port
from test_cli import data_dir, new_tenant, ok, ok_json, own_settings  # noqa: F401
from test_smoke_custom import sign

runner = CliRunner()
BODY = b'{"title": "Disk full", "service": "db"}'


@pytest.fixture
def served(own_settings: Settings) -> Iterator[tuple[Runtime, TestClient]]:  # noqa: F811
    """The webhook path of the CLI's data folder, as a running server has it."""
    runtime = build_runtime(own_settings)
    with TestClient(create_app(runtime)) as client:
        yield runtime, client


def post(served: tuple[Runtime, TestClient], tenant: str, integration: str, secret: str) -> str:
    """Send one signed alert; the error code, or ``accepted``. The server's 5 s cache
    of integrations is dropped first, as its expiry would."""
    runtime, client = served
    runtime.ingest.forget_integrations(tenant, "custom")
    url = f"/v1/wh/{tenant}/custom/{integration}"
    response = client.post(url, content=BODY, headers=sign(secret, BODY))
    return "accepted" if response.status_code == 202 else str(response.json()["error"])


def test_list_disable_enable_rotate_delete(
    served: tuple[Runtime, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = new_tenant()
    created = ok_json("integration", "create", "--tenant", tenant, "--provider", "custom")
    integration, old = created["integration_id"], created["secret"]
    assert created["webhook_url"] in created["setup"] and old in created["setup"]
    [listed] = ok_json("integration", "list", "--tenant", tenant)
    assert listed == {
        "integration_id": integration,
        "provider": "custom",
        "name": "custom",
        "enabled": True,
        "webhook_url": created["webhook_url"],
        "previous_secret_valid_until": None,
    }
    assert old not in ok("integration", "list", "--tenant", tenant)  # never the secret
    assert post(served, tenant, integration, old) == "accepted"

    assert "disabled" in ok("integration", "disable", "--tenant", tenant, integration)
    assert ok_json("integration", "list", "--tenant", tenant)[0]["enabled"] is False
    assert post(served, tenant, integration, old) == "unknown_integration"
    assert "enabled" in ok("integration", "enable", "--tenant", tenant, integration)
    assert post(served, tenant, integration, old) == "accepted"

    rotated = ok_json("integration", "rotate", "--tenant", tenant, integration)
    new = rotated["secret"]
    assert new in rotated["setup"] and old not in rotated["setup"]
    assert new != old and rotated["previous_secret_valid_until"] is not None
    assert post(served, tenant, integration, new) == "accepted"
    assert post(served, tenant, integration, old) == "accepted"  # within the grace
    assert "old secret accepted until" in ok("integration", "list", "--tenant", tenant)
    # Rotating again within the grace would refuse the first secret before its time.
    again = runner.invoke(app, ["integration", "rotate", "--tenant", tenant, integration])
    assert again.exit_code == 1 and "not rotated" in again.output
    assert rotated["previous_secret_valid_until"] in again.output
    assert post(served, tenant, integration, old) == "accepted"
    assert post(served, tenant, integration, new) == "accepted"
    # The secret leaked: --no-grace rotates anyway and refuses every old secret now.
    text = ok("integration", "rotate", "--tenant", tenant, integration, "--no-grace")
    assert "the old one is refused from now on" in text
    leaked_fix = text.split("new secret (shown once): ", 1)[1].split()[0]
    assert post(served, tenant, integration, new) == "secret_rotated"
    assert post(served, tenant, integration, old) == "signature_mismatch"
    assert post(served, tenant, integration, leaked_fix) == "accepted"
    new = leaked_fix

    monkeypatch.setenv("DD0C_SECRET_ROTATION_GRACE_SECONDS", "0")
    quick = ok_json("integration", "create", "--tenant", tenant, "--provider", "custom")
    text = ok("integration", "rotate", "--tenant", tenant, quick["integration_id"])
    newest = text.split("new secret (shown once): ", 1)[1].split()[0]
    assert "the old one is accepted until now" in text and "X-DD0C-Signature" in text
    told = post(served, tenant, quick["integration_id"], quick["secret"])
    assert told == "secret_rotated"  # told, not a mismatch
    assert post(served, tenant, quick["integration_id"], newest) == "accepted"
    # Its grace over, it may be rotated again.
    ok("integration", "rotate", "--tenant", tenant, quick["integration_id"])
    ok("integration", "delete", "--tenant", tenant, quick["integration_id"], "--yes")

    refused = runner.invoke(app, ["integration", "delete", "--tenant", tenant, integration])
    assert refused.exit_code != 0  # asked, no answer: nothing deleted
    assert len(ok_json("integration", "list", "--tenant", tenant)) == 1
    assert "deleted" in ok("integration", "delete", "--tenant", tenant, integration, "--yes")
    assert ok_json("integration", "list", "--tenant", tenant) == []
    assert post(served, tenant, integration, new) == "unknown_integration"
    for command in ("enable", "disable", "rotate", "delete"):
        result = runner.invoke(app, ["integration", command, "--tenant", tenant, integration])
        assert result.exit_code == 2 and "has no integration" in result.output


def test_another_tenants_integration_cannot_be_changed(data_dir: Path) -> None:  # noqa: F811
    mine, theirs = new_tenant("mine"), new_tenant("theirs")
    created = ok_json("integration", "create", "--tenant", theirs, "--provider", "custom")
    for command in ("disable", "rotate", "delete"):
        args = ["integration", command, "--tenant", mine, created["integration_id"], "--yes"]
        result = runner.invoke(app, args[:-1] if command != "delete" else args)
        assert result.exit_code == 2 and "has no integration" in result.output
    [still] = ok_json("integration", "list", "--tenant", theirs)
    assert still["enabled"] is True and still["previous_secret_valid_until"] is None


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_public_url_that_misses_the_local_server_is_named(
    data_dir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = new_tenant()
    create = ("integration", "create", "--tenant", tenant, "--provider", "custom")
    assert "warning" not in ok(*create)  # no server runs: nothing to compare
    with recorded(data_dir, "0.0.0.0", 9000):  # as `make run PORT=9000 HOST=0.0.0.0`
        out = ok(*create)
        assert (
            "warning: DD0C_PUBLIC_URL is http://127.0.0.1:8080 but the server of this data "
            "folder listens on http://127.0.0.1:9000: set DD0C_PUBLIC_URL=http://127.0.0.1:9000"
        ) in out
        assert "`dd0c-alert integration list` prints them again" in out
        listed = ok("integration", "list", "--tenant", tenant)
        assert "warning" in listed and "prints them again" not in listed  # it is that list
        for fine in ("http://127.0.0.1:9000", "https://alerts.example.com"):
            monkeypatch.setenv("DD0C_PUBLIC_URL", fine)
            assert "warning" not in ok(*create), fine
    assert not (data_dir / "listening.json").exists()  # the note goes with the server
    monkeypatch.delenv("DD0C_PUBLIC_URL")
    note = data_dir / "listening.json"
    note.write_text(f'{{"url": "http://127.0.0.1:9000", "pid": {_gone_pid()}}}')
    assert "warning" not in ok(*create)  # a server that died leaves a stale note


def test_demo_posts_into_the_tenant_named_or_says_which_to_use(
    served: tuple[Runtime, TestClient],
    own_settings: Settings,  # noqa: F811
) -> None:
    runtime, client = served
    tenant = new_tenant()
    ok("topology", "import", "--tenant", tenant, _topology(own_settings.data_dir))
    lines = run_demo(own_settings, str(client.base_url), 12, tenant, client)
    assert lines[0] == f"sent 16 events, 16 accepted, to tenant {tenant}"
    assert "<your API key>" in lines[1] and "dd0c-alert integration delete" in lines[2]
    drain(runtime)
    alerts = runtime.store.list_alerts(tenant, AlertFilter(), 500, None).items
    assert alerts and {a["source"] for a in alerts} == {"custom"}
    assert ok_json("topology", "show", "--tenant", tenant) == {"dependencies": {"x": ["y"]}}

    lines = run_demo(own_settings, str(client.base_url), 4, None, client)
    created = lines[0].rsplit(" ", 1)[1]
    assert created != tenant
    key = lines[1].split("shown once): ", 1)[1]
    assert runtime.store.tenant_for_api_key(key) == created
    assert f"Bearer {key}" in lines[2] and f"--tenant {created}" in lines[3]
    with pytest.raises(ValueError, match="no tenant 'nope'"):
        run_demo(own_settings, str(client.base_url), 4, "nope", client)


def test_demo_without_a_server_says_so_in_one_line_and_creates_nothing(
    data_dir: Path,  # noqa: F811
) -> None:
    tenant = new_tenant()
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["demo", "--tenant", tenant, "--url", url])
    assert result.exit_code == 1, result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: no dd0c-alert server answers at {url} ")
    assert "dd0c-alert serve" in line
    assert ok_json("integration", "list", "--tenant", tenant) == []  # no live secret left
    assert len(ok_json("tenant", "list")) == 1  # nor a new tenant 'demo'
    assert runner.invoke(app, ["demo", "--url", url]).exit_code == 1
    assert len(ok_json("tenant", "list")) == 1


def _topology(folder: Path) -> str:
    path = folder / "topology.json"
    path.write_text('{"x": ["y"]}')
    return str(path)


def test_the_alertmanager_snippet_is_a_valid_alertmanager_yml(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool not found: apt-get install prometheus-alertmanager (.ci/run does)"
    config = tmp_path / "alertmanager.yml"
    config.write_text(snippet("alertmanager", "https://dd0c.example.com/v1/wh/t/a/i", "s3"))
    checked = subprocess.run(
        [amtool, "check-config", str(config)], check=False, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert " - route" in checked.stdout and " - 1 receivers" in checked.stdout

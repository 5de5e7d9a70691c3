"""Configuration through the REST API and the CLI: topology, settings, silences and
inhibition rules — validation, tenant scoping, and round trips."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from conftest import TenantHandle, embedded_data_dir
from dd0c_alert.app import open_store
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime


def call(
    client: TestClient,
    tenant: TenantHandle,
    method: str,
    path: str,
    body: Any = None,
    status: int = 200,
) -> Any:
    response = client.request(method, path, json=body, headers=tenant.auth)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def other_tenant(runtime: Runtime) -> TenantHandle:
    created = runtime.store.create_tenant("other")
    return TenantHandle(created.id, runtime.store.create_api_key(created.id, "k"), runtime)


# --- topology --------------------------------------------------------------------------------


def test_topology_round_trips_replaces_and_is_per_tenant(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    assert call(client, tenant, "GET", "/v1/topology") == {"dependencies": {}}
    put = {"dependencies": {"frontend": ["checkout"], "checkout": ["redis", "payments-db"]}}
    stored = call(client, tenant, "PUT", "/v1/topology", put)
    assert stored == {
        "dependencies": {"checkout": ["payments-db", "redis"], "frontend": ["checkout"]}
    }
    assert call(client, tenant, "GET", "/v1/topology") == stored
    replaced = call(client, tenant, "PUT", "/v1/topology", {"dependencies": {"api": ["db"]}})
    assert replaced == {"dependencies": {"api": ["db"]}}
    assert call(client, other_tenant(runtime), "GET", "/v1/topology") == {"dependencies": {}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dependencies": {"checkout": ["checkout"]}}, "cannot depend on itself"),
        ({"dependencies": {"checkout": [42]}}, "valid string"),
        ({"dependencies": {"checkout": "payments-db"}}, "valid list"),
        ({"dependencies": {"": ["db"]}}, "at least 1 character"),
        ({"dependencies": {}, "extra": 1}, "Extra inputs"),
        ({"checkout": ["db"]}, "dependencies: Field required"),
    ],
)
def test_topology_rejects_bad_documents(
    client: TestClient, tenant: TenantHandle, body: Any, message: str
) -> None:
    error = call(client, tenant, "PUT", "/v1/topology", body, status=422)
    assert error["error"] == "invalid_request"
    assert message in error["detail"]


# --- settings --------------------------------------------------------------------------------


def test_settings_defaults_and_partial_patch(client: TestClient, tenant: TenantHandle) -> None:
    defaults = call(client, tenant, "GET", "/v1/settings")
    assert defaults == {
        "correlation_window_seconds": 300,
        "max_incident_span_seconds": 14400,
        "deploy_lookback_seconds": 900,
        "flap_threshold": 4,
        "flap_window_seconds": 3600,
        "governance_mode": "audit",
        "never_suppress_services": [],
        "auto_resolve": True,
        "features": {"topology": True, "deploys": True, "flapping": True, "inhibition": True},
        "time_zone": "UTC",
    }
    patched = call(
        client,
        tenant,
        "PATCH",
        "/v1/settings",
        {
            "flap_threshold": 6,
            "never_suppress_services": ["payments", "auth"],
            "features": {"deploys": False},
            "time_zone": "Asia/Tokyo",
        },
    )
    assert patched == {
        **defaults,
        "flap_threshold": 6,
        "never_suppress_services": ["auth", "payments"],
        "features": {**defaults["features"], "deploys": False},
        "time_zone": "Asia/Tokyo",
    }
    again = call(client, tenant, "PATCH", "/v1/settings", {"governance_mode": "strict"})
    assert again == {**patched, "governance_mode": "strict"}
    assert call(client, tenant, "GET", "/v1/settings") == again


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"correlation_window_seconds": 10}, "greater than or equal to 30"),
        ({"correlation_window_seconds": 100_000}, "less than or equal to 86400"),
        ({"flap_threshold": 1}, "greater than or equal to 2"),
        ({"flap_threshold": 101}, "less than or equal to 100"),
        ({"flap_threshold": "5"}, "valid integer"),
        ({"governance_mode": "lenient"}, "'audit' or 'strict'"),
        ({"window": 300}, "Extra inputs"),
        ({"features": {"topology": True, "magic": True}}, "Extra inputs"),
        ({"auto_resolve": None}, "may not be null"),
        ({"features": {"flapping": None}}, "may not be null"),
        ({"max_incident_span_seconds": 120}, "must be at least correlation_window_seconds"),
        ({"time_zone": "Mars/Olympus_Mons"}, "unknown time zone 'Mars/Olympus_Mons'"),
        ({"time_zone": "Europe"}, "unknown time zone 'Europe'"),
        ({"time_zone": "x" * 65}, "at most 64 characters"),
    ],
)
def test_settings_patch_rejects(
    client: TestClient, tenant: TenantHandle, body: Any, message: str
) -> None:
    error = call(client, tenant, "PATCH", "/v1/settings", body, status=422)
    assert error["error"] == "invalid_request"
    assert message in error["detail"]
    assert call(client, tenant, "GET", "/v1/settings")["flap_threshold"] == 4


def test_the_settings_schema_refuses_null_as_the_api_does(
    client: TestClient, tenant: TenantHandle
) -> None:
    """Found by schemathesis from outside: the OpenAPI description let every settings
    key be ``null`` ("X or null, default null"), which the API refuses with 422."""
    spec = client.app.openapi()  # type: ignore[attr-defined]
    body = spec["paths"]["/v1/settings"]["patch"]["requestBody"]["content"]["application/json"]
    validator = Draft202012Validator({**body["schema"], "components": spec["components"]})
    assert validator.is_valid({"auto_resolve": False, "features": {"flapping": True}})
    keys = spec["components"]["schemas"]["SettingsPatch"]["properties"]
    nulls = [{key: None} for key in keys] + [{"features": {"flapping": None}}]
    for patch in nulls:
        assert not validator.is_valid(patch), patch
        call(client, tenant, "PATCH", "/v1/settings", patch, status=422)


def test_settings_are_per_tenant(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    call(client, tenant, "PATCH", "/v1/settings", {"correlation_window_seconds": 600})
    other = other_tenant(runtime)
    assert call(client, other, "GET", "/v1/settings")["correlation_window_seconds"] == 300


# --- silences --------------------------------------------------------------------------------


def test_silence_crud(client: TestClient, tenant: TenantHandle, runtime: Runtime) -> None:
    text = call(
        client,
        tenant,
        "POST",
        "/v1/silences",
        {
            "matchers": '{service="db", severity=~"low|medium"}',
            "starts_at": "2020-01-01T00:00:00",
            "author": "ana",
            "comment": "noisy until the migration ends",
        },
        status=201,
    )
    assert text["matchers"] == '{service="db", severity=~"low|medium"}'
    assert text["starts_at"] == "2020-01-01T00:00:00Z"  # no offset means UTC
    assert text["ends_at"] is None
    assert text["active"] is True
    window = call(
        client,
        tenant,
        "POST",
        "/v1/silences",
        {
            "matchers": [
                {"name": "env", "op": "!=", "value": "prod"},
                {"name": "service", "op": "=", "value": "batch"},
            ],
            "schedule": "sat,sun 02:00-04:00",
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-02-01T00:00:00Z",
        },
        status=201,
    )
    assert window["matchers"] == '{env!="prod", service="batch"}'
    assert window["schedule"] == "sat,sun 02:00-04:00"
    assert window["active"] is False

    listed = call(client, tenant, "GET", "/v1/silences")["items"]
    assert [s["id"] for s in listed] == [window["id"], text["id"]]
    _, rules = runtime.store.tenant_config(tenant.id)
    assert {s.id for s in rules.silences} == {text["id"], window["id"]}

    other = other_tenant(runtime)
    assert call(client, other, "GET", "/v1/silences")["items"] == []
    call(client, other, "DELETE", f"/v1/silences/{text['id']}", status=404)

    call(client, tenant, "DELETE", f"/v1/silences/{text['id']}", status=204)
    call(client, tenant, "DELETE", f"/v1/silences/{text['id']}", status=404)
    assert [s["id"] for s in call(client, tenant, "GET", "/v1/silences")["items"]] == [window["id"]]


def test_a_silence_is_replaced_in_place(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    """A maintenance window that runs long is extended, not deleted and made again (its
    id, named by decisions and the audit log, stays)."""
    body = {
        "matchers": '{service="db"}',
        "ends_at": "2030-01-01T02:00:00Z",
        "comment": "migration",
    }
    made = call(client, tenant, "POST", "/v1/silences", body, status=201)
    longer = {**body, "ends_at": "2030-01-01T04:00:00Z", "comment": "migration, running late"}
    changed = call(client, tenant, "PUT", f"/v1/silences/{made['id']}", longer)
    assert changed["id"] == made["id"] and changed["ends_at"] == "2030-01-01T04:00:00Z"
    assert changed["created_at"] == made["created_at"]
    _, rules = runtime.store.tenant_config(tenant.id)
    [silence] = rules.silences
    assert silence.ends_at is not None and silence.ends_at.hour == 4  # the worker's view
    wide = {**body, "matchers": '{team=~".*"}'}
    call(client, tenant, "PUT", f"/v1/silences/{made['id']}", wide, status=422)
    call(client, other_tenant(runtime), "PUT", f"/v1/silences/{made['id']}", longer, status=404)
    entries = call(client, tenant, "GET", "/v1/audit?action=silence.update")["items"]
    assert [e["target_id"] for e in entries] == [made["id"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"matchers": "{}"}, "at least one matcher is required"),
        ({"matchers": []}, "at least one matcher is required"),
        ({"matchers": '{service="db"'}, "expected a comma or } at column 14"),
        ({"matchers": '{service=~"(db"}'}, "invalid regex for service"),
        ({"matchers": [{"name": "service", "op": "==", "value": "db"}]}, "op"),
        ({"matchers": [{"name": "service", "op": "=~", "value": "[db"}]}, "invalid regex"),
        ({"matchers": '{service="db"}', "schedule": "someday 02:00-04:00"}, "unknown day"),
        ({"matchers": '{service="db"}', "schedule": "sat 04:00-04:00"}, "the window is empty"),
        (
            {"matchers": '{service="db"}', "schedule": "TZ=../../etc/passwd; sat 02:00-04:00"},
            "unknown time zone",
        ),
        (  # a folder of the zone database: was a 500 (IsADirectoryError)
            {"matchers": '{service="db"}', "schedule": "TZ=Europe; sat 02:00-04:00"},
            "unknown time zone 'Europe'",
        ),
        (
            {
                "matchers": '{service="db"}',
                "starts_at": "2030-01-02T00:00:00Z",
                "ends_at": "2030-01-01T00:00:00Z",
            },
            "ends_at must be after starts_at",
        ),
        (
            {"matchers": '{service="db"}', "ends_at": "2020-01-01T00:00:00Z"},
            "ends_at is in the past",
        ),
        ({"matchers": '{service="db"}', "creator": "ana"}, "Extra inputs"),
        # Every matcher matches an absent label: the silence would cover every alert.
        ({"matchers": '{team=~".*"}'}, "must not match the empty string"),
        ({"matchers": '{env!="prod", team=""}'}, "must not match the empty string"),
        ({"matchers": [{"name": "env", "op": "!~", "value": "prod"}]}, "empty string"),
        ({}, "matchers: Field required"),
    ],
)
def test_silence_validation(
    client: TestClient, tenant: TenantHandle, body: Any, message: str
) -> None:
    error = call(client, tenant, "POST", "/v1/silences", body, status=422)
    assert error["error"] == "invalid_request"
    assert message in error["detail"]
    assert call(client, tenant, "GET", "/v1/silences")["items"] == []


# --- inhibitions -----------------------------------------------------------------------------


def test_inhibition_crud(client: TestClient, tenant: TenantHandle, runtime: Runtime) -> None:
    rule = call(
        client,
        tenant,
        "POST",
        "/v1/inhibitions",
        {
            "source": '{alertname="NodeDown"}',
            "target": [{"name": "severity", "op": "=~", "value": "low|medium"}],
            "equal": ["node", "cluster"],
        },
        status=201,
    )
    assert (rule["source"], rule["target"], rule["equal"]) == (
        '{alertname="NodeDown"}',
        '{severity=~"low|medium"}',
        ["node", "cluster"],
    )
    assert call(client, tenant, "GET", "/v1/inhibitions")["items"] == [rule]
    [stored] = runtime.store.tenant_config(tenant.id)[1].inhibitions
    assert stored.equal == ("node", "cluster")

    path = f"/v1/inhibitions/{rule['id']}"
    changed = {"source": '{alertname="ClusterDown"}', "target": '{severity!="critical"}'}
    replaced = call(client, tenant, "PUT", path, changed)
    assert (replaced["id"], replaced["created_at"]) == (rule["id"], rule["created_at"])
    assert (replaced["source"], replaced["equal"]) == ('{alertname="ClusterDown"}', [])
    bad = call(client, tenant, "PUT", path, changed | {"target": '{a=~"(?=x)"}'}, status=422)
    assert "RE2" in bad["detail"]
    assert call(client, tenant, "GET", "/v1/inhibitions")["items"] == [replaced]

    other = other_tenant(runtime)
    assert call(client, other, "GET", "/v1/inhibitions")["items"] == []
    call(client, other, "PUT", path, changed, status=404)
    call(client, other, "DELETE", f"/v1/inhibitions/{rule['id']}", status=404)
    call(client, tenant, "DELETE", f"/v1/inhibitions/{rule['id']}", status=204)
    assert call(client, tenant, "GET", "/v1/inhibitions")["items"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"source": "{}", "target": '{severity="low"}'}, "source: Value error, at least one"),
        ({"source": '{severity="critical"}', "target": ""}, "target: Value error, at least one"),
        ({"source": "{severity=critical", "target": '{a="b"}'}, "expected a comma or }"),
        ({"source": '{a="b"}', "target": '{c="d"}', "equal": [""]}, "at least 1 character"),
        ({"source": '{a="b"}'}, "target: Field required"),
        ({"source": '{a="\u0000"}', "target": '{b="c"}'}, "may not contain a NUL"),
        ({"source": '{a="b"}', "target": '{c="d"}', "equal": ["\u0000"]}, "NUL character"),
    ],
)
def test_inhibition_validation(
    client: TestClient, tenant: TenantHandle, body: Any, message: str
) -> None:
    error = call(client, tenant, "POST", "/v1/inhibitions", body, status=422)
    assert message in error["detail"]


def test_configuration_needs_an_api_key(client: TestClient) -> None:
    for method, path in (
        ("GET", "/v1/topology"),
        ("PUT", "/v1/topology"),
        ("GET", "/v1/settings"),
        ("PATCH", "/v1/settings"),
        ("GET", "/v1/silences"),
        ("POST", "/v1/inhibitions"),
        ("GET", "/v1/suppressions"),
    ):
        assert client.request(method, path, json={}).status_code == 401, path


# --- CLI -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return embedded_data_dir(tmp_path, monkeypatch)


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


def test_cli_topology_import_and_show(data_dir: Path, tmp_path: Path) -> None:
    tenant = open_store(Settings()).create_tenant("acme").id
    plain = tmp_path / "deps.json"
    plain.write_text(json.dumps({"frontend": ["checkout"], "checkout": ["payments-db"]}))
    code, output = cli("topology", "import", str(plain), "--tenant", tenant)
    assert code == 0, output
    assert output == "checkout -> payments-db frontend -> checkout"

    wrapped = tmp_path / "deps.yaml"
    wrapped.write_text("dependencies:\n  api:\n    - db\n    - cache\n")
    code, output = cli("topology", "import", str(wrapped), "--tenant", tenant, "--json")
    assert code == 0, output
    assert json.loads(output) == {"dependencies": {"api": ["cache", "db"]}}

    code, output = cli("topology", "show", "--tenant", tenant, "--json")
    assert (code, json.loads(output)) == (0, {"dependencies": {"api": ["cache", "db"]}})
    _, rules = open_store(Settings()).tenant_config(tenant)
    assert rules.dependencies == {"api": frozenset({"cache", "db"})}


def test_cli_topology_rejects_bad_files_and_tenants(data_dir: Path, tmp_path: Path) -> None:
    tenant = open_store(Settings()).create_tenant("acme").id
    selfish = tmp_path / "selfish.json"
    selfish.write_text(json.dumps({"api": ["api"]}))
    code, output = cli("topology", "import", str(selfish), "--tenant", tenant)
    assert code != 0 and "'api' cannot depend on itself" in output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, output = cli("topology", "import", str(broken), "--tenant", tenant)
    assert code != 0 and "is not valid JSON" in output
    code, output = cli("topology", "import", str(selfish), "--tenant", "nobody")
    assert code != 0 and "no tenant 'nobody'" in output
    code, output = cli("topology", "show", "--tenant", tenant)
    assert (code, output) == (0, "no dependencies declared")

"""Who changed what: configuration, routes, rules, Slack settings, users and keys all
land in the audit log with the acting key, and no secret does."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import TenantHandle


def test_configuration_changes_are_audited_without_secrets(
    client: TestClient, tenant: TenantHandle
) -> None:
    auth = tenant.auth

    def ok(method: str, path: str, body: object | None = None) -> dict[str, object]:
        response = client.request(method, path, json=body, headers=auth)
        assert response.status_code < 300, response.text
        return response.json() if response.content else {}

    ok("PATCH", "/v1/settings", {"correlation_window_seconds": 600})
    silence = ok("POST", "/v1/silences", {"matchers": '{service="batch"}', "comment": "night"})
    rule = ok(
        "POST",
        "/v1/inhibitions",
        {"source": '{alertname="NodeDown"}', "target": '{severity="low"}'},
    )
    ok("PUT", f"/v1/inhibitions/{rule['id']}", {"source": '{a="b"}', "target": '{c="d"}'})
    ok("DELETE", f"/v1/inhibitions/{rule['id']}")
    route = ok(
        "POST",
        "/v1/routes",
        {"name": "hook", "destinations": [{"type": "webhook", "url": "https://h.example/x",
                                           "secret": "whsec-audit-secret"}]},
    )  # fmt: skip
    ok("DELETE", f"/v1/routes/{route['id']}")
    ok(
        "PUT",
        "/v1/slack",
        {
            "bot_token": "xoxb-audit-token",
            "signing_secret": "audit-signing",
            "default_channel": "#x",
        },
    )
    key = ok("POST", "/v1/api-keys", {"name": "ci", "scope": "read"})
    ok("DELETE", f"/v1/api-keys/{key['id']}")
    ok("DELETE", f"/v1/api-keys/{key['id']}")  # again: nothing changes, nothing audited
    response = client.get("/v1/audit?limit=100", headers=auth)
    assert response.status_code == 200
    entries = response.json()["items"]
    assert [e["action"] for e in entries].count("api_key.revoke") == 1
    actions = {e["action"] for e in entries}
    assert {
        "settings.update",
        "silence.create",
        "inhibition.create",
        "inhibition.update",
        "inhibition.delete",
        "route.create",
        "route.delete",
        "slack.configure",
        "api_key.create",
        "api_key.revoke",
    } <= actions
    assert {e["actor"] for e in entries} == {"key:test"}
    assert any(e["target_id"] == silence["id"] for e in entries)
    text = response.text
    for secret in ("whsec-audit-secret", "xoxb-audit-token", "audit-signing", str(key["key"])):
        assert secret not in text

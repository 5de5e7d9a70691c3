"""Tenant isolation over the whole REST API, generated from ``/openapi.json``.

Tenant B owns one object of every kind a path parameter names. Every operation on
such a path is called by tenant A, once with an admin API key and once with its
owner's session token, naming B's object: the answer is 404 (or a 422 for a body
refused before any lookup), and B's data is unchanged afterwards. A path parameter
this test does not know fails the test, so a new endpoint cannot slip past it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain, tenant_connection
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.correlation.model import InhibitRule, Silence
from dd0c_alert.correlation.rules import parse_matchers
from dd0c_alert.correlation.suggestions import Suggestion
from dd0c_alert.domain.ids import new_id
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.outbox import MAIL, Planned
from dd0c_alert.web.app import create_app
from dd0c_alert.web.passwords import hash_password
from webhook_helpers import auth_headers, new_tenant

SECRET = "isolation-secret"
PASSWORD = "a long passphrase for A 42"
#: Bodies that pass validation, so the lookup (not the schema) answers.
BODIES: dict[str, dict[str, Any]] = {
    "feedback": {"verdict": "noise"},
    "notes": {"text": "not yours"},
    "snooze": {"minutes": 60},
    "merge": {"into": ""},  # filled with B's own second incident
    "split": {"alert_ids": []},  # filled with B's own alert
    "integrations": {"name": "renamed"},
    "inhibitions": {"source": '{service="a"}', "target": '{service="c"}'},
    "routes": {"name": "renamed"},
    "users": {"role": "viewer"},
}


def b_objects(runtime: Runtime, client: TestClient, b: TenantHandle) -> dict[str, str]:
    integration = b.integration("custom", SECRET)
    for title in ("first", "second"):
        body = orjson.dumps({"title": title, "service": f"svc-{title}", "severity": "critical"})
        headers = {"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})}
        response = client.post(f"/v1/wh/{b.id}/custom/{integration}", content=body, headers=headers)
        assert response.status_code == 202
    drain(runtime)
    store = runtime.store
    alerts = client.get("/v1/alerts", headers=b.auth).json()["items"]
    incidents = client.get("/v1/incidents", headers=b.auth).json()["items"]
    assert len(alerts) == 2 and len(incidents) == 2
    BODIES["merge"]["into"] = incidents[1]["id"]
    BODIES["split"]["alert_ids"] = [alerts[0]["id"]]
    decision = store.alert_decision(b.id, alerts[0]["id"])
    assert decision is not None
    silence = store.create_silence(
        b.id, Silence(id=new_id(), matchers=parse_matchers('{service="x"}'))
    )
    rule = store.create_inhibition(
        b.id,
        InhibitRule(new_id(), parse_matchers('{service="a"}'), parse_matchers('{service="b"}')),
    )
    route = runtime.notify_settings.save_route(
        b.id, {"name": "b", "destinations": [{"type": "email", "to": ["b@example.com"]}]}
    )
    assert route is not None
    runtime.outbox.plan(
        b.id, [], [Planned(incidents[0]["id"], "email", "b@example.com", MAIL, "opened")],
        datetime.now(UTC),
    )  # fmt: skip
    delivery = runtime.outbox.list_deliveries(b.id, 1, None).items[0]
    store.save_suggestions(
        b.id,
        [Suggestion("tune", "fp-b", "Tune it", {"fired": 10}, {"matchers": '{service="x"}',
                                                            "duration_days": 30})],
        datetime.now(UTC),
    )  # fmt: skip
    suggestion = client.get("/v1/suggestions", headers=b.auth).json()["items"][0]
    accounts = store.accounts()
    user = accounts.create_user(f"b-{new_id()}@example.com", hash_password(PASSWORD))
    accounts.add_member(b.id, user.id, "member")
    _, key = accounts.create_api_key(b.id, "b-key", "admin")
    _, invitation = accounts.create_invitation(
        b.id, "b-invited@example.com", "member", "user:b@example.com", timedelta(days=1)
    )
    return {
        "alert_id": alerts[0]["id"],
        "incident_id": incidents[0]["id"],
        "decision_id": str(decision["decision_id"]),
        "silence_id": str(silence["id"]),
        "rule_id": str(rule["id"]),
        "route_id": str(route["id"]),
        "delivery_id": str(delivery["id"]),
        "suggestion_id": str(suggestion["id"]),
        "integration_id": integration,
        "user_id": user.id,
        "key_id": key.id,
        "invitation_id": invitation.id,
    }


def snapshot(settings: Settings, client: TestClient, b: TenantHandle, ids: dict[str, str]) -> Any:
    with tenant_connection(settings, b.id) as conn:
        tables = sorted(sa.inspect(conn).get_table_names())
        counts = {
            table: conn.execute(
                sa.text(f'SELECT count(*) FROM "{table}" WHERE tenant_id = :t'), {"t": b.id}
            ).scalar_one()
            for table in tables
            if "tenant_id" in {c["name"] for c in sa.inspect(conn).get_columns(table)}
        }
    views = [
        client.get(path, headers=b.auth).json()
        for path in (
            f"/v1/incidents/{ids['incident_id']}",
            f"/v1/integrations/{ids['integration_id']}",
            f"/v1/routes/{ids['route_id']}",
            "/v1/silences",
            "/v1/inhibitions",
            "/v1/suggestions",
            "/v1/users",
            "/v1/invitations",
        )
    ]
    return counts, views


@pytest.fixture
def quiet(settings: Settings) -> Iterator[tuple[Runtime, TestClient]]:
    """No notifier: nothing but the test's own requests may change B's data."""
    runtime = build_runtime(settings, roles=frozenset({"ingest", "correlate", "api"}))
    with TestClient(create_app(runtime)) as client:
        yield runtime, client


@pytest.mark.both_modes
def test_no_operation_reaches_another_tenants_objects(
    quiet: tuple[Runtime, TestClient], settings: Settings
) -> None:
    runtime, client = quiet
    a, b = new_tenant(runtime, "a"), new_tenant(runtime, "b")
    a_user = runtime.store.accounts().create_user(
        f"a-{new_id()}@example.com", hash_password(PASSWORD)
    )
    runtime.store.accounts().add_member(a.id, a_user.id, "owner")
    login = client.post(
        "/v1/auth/login", json={"email": a_user.email, "password": PASSWORD, "tenant_id": a.id}
    )
    assert login.status_code == 200, login.text
    callers = {
        "key": a.auth,
        "session": {"Authorization": f"Bearer {login.json()['access_token']}"},
    }
    ids = b_objects(runtime, client, b)
    before = snapshot(settings, client, b, ids)
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, operations in sorted(spec["paths"].items()):
        if "{" not in path or path.startswith("/v1/wh/"):
            continue
        for method in operations:
            concrete = path
            for name in [p.split("}")[0] for p in path.split("{")[1:]]:
                assert name in ids, f"{method.upper()} {path}: no object of B for {{{name}}}"
                concrete = concrete.replace(f"{{{name}}}", ids[name])
            segment = path.split("/")[2] if path.count("/") > 2 else ""
            last = path.rstrip("/").split("/")[-1]
            body = (
                BODIES.get(last) or BODIES.get(segment)
                if method in ("post", "patch", "put")
                else None
            )
            for who, headers in callers.items():
                response = client.request(method.upper(), concrete, json=body, headers=headers)
                assert response.status_code in (404, 422), (
                    f"{who}: {method.upper()} {path} -> {response.status_code} {response.text}"
                )
                checked += 1
    assert checked >= 40
    assert snapshot(settings, client, b, ids) == before

"""Helpers of the dashboard tests: sign up, log in, post an alert, read forms."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.testclient import TestClient

from dd0c_alert.correlation.suggestions import Suggestion
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import IncidentFilter
from dd0c_alert.web.passwords import hash_password
from webhook_helpers import auth_headers

PASSWORD = "correct horse battery staple"
SECRET = "dashboard-test-secret"


def csrf(client: TestClient) -> str:
    token = client.cookies.get("dd0c_csrf")
    if token is None:
        client.get("/login")
        token = client.cookies.get("dd0c_csrf")
    assert token
    return token


def sign_up(client: TestClient, email: str = "owner@example.com", team: str = "Acme") -> str:
    """Sign up through the form; the new tenant's id."""
    response = client.post(
        "/signup",
        data={"csrf_token": csrf(client), "email": email, "password": PASSWORD, "team_name": team},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/onboarding"
    user = client.app.state.accounts.user_by_email(email)  # type: ignore[attr-defined]
    [membership] = client.app.state.accounts.tenants_of(user.id)  # type: ignore[attr-defined]
    return str(membership["tenant_id"])


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/login",
        data={"csrf_token": csrf(client), "email": email, "password": password},
        follow_redirects=False,
    )


def add_user(runtime: Runtime, tenant_id: str, email: str, role: str) -> None:
    accounts = runtime.store.accounts()
    user = accounts.create_user(email, hash_password(PASSWORD))
    assert accounts.add_member(tenant_id, user.id, role)


def post_alert(
    client: TestClient,
    runtime: Runtime,
    tenant_id: str,
    integration: str | None = None,
    **alert: Any,
) -> str:
    """Post one alert through the signed custom webhook; the id of its incident."""
    if integration is None:
        integration = runtime.store.create_integration(tenant_id, "custom", "custom", SECRET).id
    body = orjson.dumps({"title": "db down", "service": "db", "severity": "critical", **alert})
    headers = {"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})}
    response = client.post(
        f"/v1/wh/{tenant_id}/custom/{integration}", content=body, headers=headers
    )
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = runtime.store.list_incidents(tenant_id, IncidentFilter(), 10, None)
        if page.items:
            return str(page.items[0]["id"])
        time.sleep(0.05)
    raise AssertionError("no incident")


def post_forms(html: str) -> list[str]:
    """The actions of the page's POST forms."""
    return re.findall(r'<form method="post" action="([^"]+)"', html)


def add_suggestion(runtime: Runtime, tenant_id: str) -> str:
    """An open "tune" suggestion for a noisy fingerprint; its id."""
    found = Suggestion(
        kind="tune",
        key="fp:disk",
        title="disk-full on db fired 40 times, never acknowledged",
        evidence={"fired": 40, "acknowledged": 0},
        proposal={"action": "mute", "matchers": '{fingerprint="disk"}', "duration_days": 7},
    )
    runtime.store.save_suggestions(tenant_id, [found], datetime.now(UTC))
    [item] = runtime.store.list_suggestions(tenant_id, "open", None, 10, None).items
    return str(item["id"])

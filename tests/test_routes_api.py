"""Notification routes through the REST API: create, read, change, delete; validation
with the router's own messages; the per-tenant cap; tenant isolation; and webhook
secrets that are written once and never read back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.domain.models import Severity
from dd0c_alert.notify.routing import WebhookDestination, parse_route, route
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app

HOOK_SECRET = "whsec-route-secret-1"
NEW_SECRET = "whsec-route-secret-2"
ESCALATION_SECRET = "whsec-escalation-secret"
SECRETS = (HOOK_SECRET, NEW_SECRET, ESCALATION_SECRET)


def route_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "payments",
        "matchers": '{service="checkout"}',
        "min_severity": "high",
        "continue": False,
        "quiet_hours": "mon-fri 22:00-07:00",
        "destinations": [
            {"type": "slack", "channel": "#oncall"},
            {"type": "email", "to": ["a@example.com"]},
            {"type": "webhook", "url": "https://hooks.example.com/dd0c", "secret": HOOK_SECRET},
        ],
        "escalation": {
            "after_seconds": 900,
            "destinations": [
                {"type": "webhook", "url": "https://esc.example.com/x", "secret": ESCALATION_SECRET}
            ],
        },
    }
    body.update(changes)
    return body


class Api:
    """Calls as one tenant; every answer is checked for secrets before it is returned."""

    def __init__(self, client: TestClient, tenant: TenantHandle) -> None:
        self.client, self.tenant = client, tenant

    def __call__(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.client.request(method, path, json=body, headers=self.tenant.auth)
        assert response.status_code == status, response.text
        for secret in SECRETS:
            assert secret not in response.text
        assert "secret_encrypted" not in response.text
        return response.json() if response.content else None


def other(runtime: Runtime, name: str = "other") -> TenantHandle:
    created = runtime.store.create_tenant(name)
    return TenantHandle(created.id, runtime.store.create_api_key(created.id, "k"), runtime)


@pytest.fixture
def api(client: TestClient, tenant: TenantHandle) -> Api:
    return Api(client, tenant)


def test_create_list_get_round_trip_without_secrets(api: Api, runtime: Runtime) -> None:
    assert api("GET", "/v1/routes") == {"items": []}
    created = api("POST", "/v1/routes", route_body(), status=201)
    assert created["id"]
    assert created["name"] == "payments"
    assert created["matchers"] == '{service="checkout"}'
    hook = created["destinations"][2]
    assert hook == {"type": "webhook", "url": "https://hooks.example.com/dd0c", "secret_set": True}
    assert created["escalation"]["after_seconds"] == 900
    assert created["escalation"]["destinations"][0]["secret_set"] is True
    assert api("GET", f"/v1/routes/{created['id']}") == created
    assert api("GET", "/v1/routes") == {"items": [created]}

    # The notifier still gets the secret, and what it reads parses.
    [revealed] = runtime.notify_settings.routes_for_sending(api.tenant.id)
    parsed = parse_route(revealed)
    assert WebhookDestination("https://hooks.example.com/dd0c", HOOK_SECRET) in parsed.destinations


def test_routes_list_in_creation_order(api: Api) -> None:
    names = ["first", "second", "third"]
    for name in names:
        api("POST", "/v1/routes", {"name": name, "destinations": []}, status=201)
    assert [r["name"] for r in api("GET", "/v1/routes")["items"]] == names


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"destinations": []}, "'name' must be a non-empty string"),
        (route_body(matchers="{service=~}"), "matchers"),
        (route_body(matchers='{service="' + "a" * 2000 + '"}'), "the limit is 1024"),
        (route_body(min_severity="urgent"), "'min_severity' must be one of"),
        (route_body(quiet_hours="someday 25:00-26:00"), "quiet_hours"),
        (route_body(quiet_hours="TZ=Mars/Olympus; daily 22:00-07:00"), "unknown time zone"),
        # Each was a 500: a folder of the zone database, and quiet hours not text.
        (route_body(quiet_hours="TZ=Europe; daily 22:00-07:00"), "unknown time zone 'Europe'"),
        (route_body(quiet_hours=5), "'quiet_hours' must be text"),
        (route_body(quiet_hours=["daily 22:00-07:00"]), "'quiet_hours' must be text"),
        (route_body(quiet_hours=True), "'quiet_hours' must be text"),
        # As a silence's schedule: 50,000 windows (1 MiB) cost 33 ms per incident each.
        (route_body(quiet_hours="; ".join(["daily 00:00-00:01"] * 12)), "the limit is 200"),
        (route_body(destinations=[{"type": "pager"}]), "unknown destination type"),
        (route_body(destinations=[{"type": "email", "to": ["nope"]}]), "not an email address"),
        (
            route_body(destinations=[{"type": "webhook", "url": "ftp://x.example.com"}]),
            "'url' must be an http(s) URL",
        ),
        (
            route_body(destinations=[{"type": "webhook", "url": "https://x.example.com"}]),
            "'secret' must be a non-empty string",
        ),
        (route_body(escalation={"after_seconds": 0, "destinations": []}), "after_seconds"),
        (route_body(priority=1), "unknown keys: priority"),
        (route_body(**{"continue": "yes"}), "'continue' must be true or false"),
    ],
)
def test_invalid_routes_are_refused_with_the_parsers_message(
    api: Api, body: dict[str, Any], message: str
) -> None:
    refused = api("POST", "/v1/routes", body, status=422)
    assert refused["error"] == "invalid_request"
    assert message in refused["detail"]
    assert api("GET", "/v1/routes") == {"items": []}


def test_a_body_that_is_not_an_object_is_refused(api: Api) -> None:
    assert api("POST", "/v1/routes", [route_body()], status=422)["error"] == "invalid_request"


def test_patch_merges_keys_and_keeps_the_webhook_secret(api: Api, runtime: Runtime) -> None:
    created = api("POST", "/v1/routes", route_body(), status=201)
    path = f"/v1/routes/{created['id']}"
    changed = api("PATCH", path, {"min_severity": "critical", "continue": True})
    assert changed["min_severity"] == "critical"
    assert changed["continue"] is True
    assert changed["destinations"] == created["destinations"]
    assert changed["quiet_hours"] == created["quiet_hours"]

    # What GET shows can be edited and written back without knowing the secret.
    shown = api("GET", path)
    shown["destinations"].append({"type": "slack", "channel": "#payments"})
    api("PATCH", path, {"destinations": shown["destinations"]})
    [revealed] = runtime.notify_settings.routes_for_sending(api.tenant.id)
    hooks = [d for d in revealed["destinations"] if d["type"] == "webhook"]
    assert hooks == [
        {"type": "webhook", "url": "https://hooks.example.com/dd0c", "secret": HOOK_SECRET}
    ]
    assert revealed["escalation"]["destinations"][0]["secret"] == ESCALATION_SECRET
    assert len(revealed["destinations"]) == 4

    # A new secret replaces the old one.
    api(
        "PATCH",
        path,
        {
            "destinations": [
                {"type": "webhook", "url": "https://hooks.example.com/dd0c", "secret": NEW_SECRET}
            ]
        },
    )
    [revealed] = runtime.notify_settings.routes_for_sending(api.tenant.id)
    assert revealed["destinations"][0]["secret"] == NEW_SECRET


def test_patch_revalidates_and_a_new_webhook_url_needs_its_secret(api: Api) -> None:
    created = api("POST", "/v1/routes", route_body(), status=201)
    path = f"/v1/routes/{created['id']}"
    bad = api("PATCH", path, {"min_severity": "loud"}, status=422)
    assert "'min_severity' must be one of" in bad["detail"]
    moved = [{"type": "webhook", "url": "https://elsewhere.example.com/"}]
    assert "'secret'" in api("PATCH", path, {"destinations": moved}, status=422)["detail"]
    assert api("GET", path) == created


def test_delete(api: Api) -> None:
    created = api("POST", "/v1/routes", route_body(), status=201)
    api("DELETE", f"/v1/routes/{created['id']}", status=204)
    assert api("GET", "/v1/routes") == {"items": []}
    api("DELETE", f"/v1/routes/{created['id']}", status=404)
    api("GET", f"/v1/routes/{created['id']}", status=404)
    api("PATCH", f"/v1/routes/{created['id']}", {"name": "x"}, status=404)


def test_another_tenants_route_is_404_and_unchanged(
    client: TestClient, api: Api, runtime: Runtime
) -> None:
    created = api("POST", "/v1/routes", route_body(), status=201)
    intruder = Api(client, other(runtime))
    path = f"/v1/routes/{created['id']}"
    assert intruder("GET", path, status=404)["error"] == "not_found"
    intruder("PATCH", path, {"name": "stolen"}, status=404)
    intruder("DELETE", path, status=404)
    assert intruder("GET", "/v1/routes") == {"items": []}
    assert api("GET", path) == created


def test_route_names_are_unique(api: Api) -> None:
    """A name identifies a route in deliveries and in the escalation it schedules."""
    first = api("POST", "/v1/routes", {"name": "oncall"}, status=201)
    second = api("POST", "/v1/routes", {"name": "db"}, status=201)
    refused = api("POST", "/v1/routes", {"name": " oncall "}, status=422)
    assert refused["error"] == "invalid_request"
    assert "a route named 'oncall' exists already" in refused["detail"]
    renamed = api("PATCH", f"/v1/routes/{second['id']}", {"name": "oncall"}, status=422)
    assert "must be unique" in renamed["detail"]
    api("PATCH", f"/v1/routes/{first['id']}", {"name": "oncall", "min_severity": "low"})
    assert [r["name"] for r in api("GET", "/v1/routes")["items"]] == ["oncall", "db"]


def test_route_matchers_are_capped_like_silences(settings: Settings) -> None:
    runtime = build_runtime(settings.model_copy(update={"max_matchers_per_rule": 3}))
    created = runtime.store.create_tenant("capped")
    handle = TenantHandle(created.id, runtime.store.create_api_key(created.id, "k"), runtime)
    with TestClient(create_app(runtime)) as client:
        api = Api(client, handle)
        four = "{" + ", ".join(f'l{n}="x"' for n in range(4)) + "}"
        refused = api("POST", "/v1/routes", {"name": "a", "matchers": four}, status=422)
        assert refused["error"] == "limit_exceeded"
        assert "4 matchers in one rule" in refused["detail"]
        assert "DD0C_MAX_MATCHERS_PER_RULE" in refused["detail"]
        made = api("POST", "/v1/routes", {"name": "a", "matchers": '{a="x"}'}, status=201)
        api("PATCH", f"/v1/routes/{made['id']}", {"matchers": four}, status=422)
        assert api("GET", "/v1/routes")["items"][0]["matchers"] == '{a="x"}'


def test_routes_need_an_api_key(client: TestClient) -> None:
    assert client.get("/v1/routes").status_code == 401
    assert client.post("/v1/routes", json=route_body()).status_code == 401


@pytest.mark.both_modes
def test_routes_per_tenant_are_capped(settings: Settings) -> None:
    runtime = build_runtime(settings.model_copy(update={"max_routes": 2}))
    created = runtime.store.create_tenant("capped")
    handle = TenantHandle(created.id, runtime.store.create_api_key(created.id, "k"), runtime)
    with TestClient(create_app(runtime)) as client:
        api = Api(client, handle)
        for name in ("a", "b"):
            api("POST", "/v1/routes", {"name": name}, status=201)
        refused = api("POST", "/v1/routes", {"name": "c"}, status=422)
        assert refused["error"] == "limit_exceeded"
        assert "DD0C_MAX_ROUTES" in refused["detail"]
        assert len(api("GET", "/v1/routes")["items"]) == 2
        # Changing an existing route is not creating one.
        first = api("GET", "/v1/routes")["items"][0]
        api("PATCH", f"/v1/routes/{first['id']}", {"min_severity": "low"})


def test_patch_with_null_removes_an_optional_key(api: Api) -> None:
    created = api("POST", "/v1/routes", route_body(), status=201)
    changed = api("PATCH", f"/v1/routes/{created['id']}", {"quiet_hours": None, "escalation": None})
    assert "quiet_hours" not in changed and "escalation" not in changed
    assert changed["destinations"] == created["destinations"]
    assert api("PATCH", f"/v1/routes/{created['id']}", {"name": None}, status=422)["error"] == (
        "invalid_request"
    )


def _route_schema(client: TestClient, path: str, method: str) -> dict[str, Any]:
    body = client.get("/openapi.json").json()["paths"][path][method]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def test_openapi_describes_the_route_document_the_parser_takes(api: Api) -> None:
    """The bodies were documented as any object: a client generated from the OpenAPI
    had no fields to fill. What the schema accepts and refuses now agrees with the
    router's parser on these, and a route read back is a valid change."""
    validator = jsonschema.Draft202012Validator
    create = validator(_route_schema(api.client, "/v1/routes", "post"))
    change = validator(_route_schema(api.client, "/v1/routes/{route_id}", "patch"))
    refused = [
        route_body(min_severity="urgent"),
        route_body(destinations=[{"type": "pager", "number": "1"}]),
        route_body(destinations=[{"type": "email", "to": []}]),
        route_body(escalation={"after_seconds": 0, "destinations": []}),
        route_body(colour="red"),
        {"destinations": []},  # no name
    ]
    for body in refused:
        assert not create.is_valid(body), body
        api("POST", "/v1/routes", body, status=422)
    created = api("POST", "/v1/routes", route_body(), status=201)
    assert create.is_valid(route_body())
    assert change.is_valid(created)  # read, edit, write back: secrets left out
    assert change.is_valid({"quiet_hours": None, "min_severity": "critical"})
    api("PATCH", f"/v1/routes/{created['id']}", created)


def test_routes_are_put_in_a_new_order(api: Api, runtime: Runtime) -> None:
    """The first matching route takes an incident, so the order decides who is paged:
    it could only be changed by deleting and re-creating routes (losing their ids)."""
    slack = [{"type": "slack", "channel": "#everything"}]
    catch_all = api("POST", "/v1/routes", {"name": "everything", "destinations": slack}, 201)
    payments = api("POST", "/v1/routes", route_body(name="payments"), 201)
    third = api("POST", "/v1/routes", {"name": "third", "destinations": []}, 201)

    def first_match() -> str:
        routes = [parse_route(r) for r in runtime.notify_settings.routes_for_sending(api.tenant.id)]
        labels = {"service": "checkout"}
        chosen = route(routes, labels, Severity.CRITICAL, datetime.now(UTC), "#default")
        return chosen[0][0].name if chosen and chosen[0][0] is not None else ""

    assert first_match() == "everything"
    order = [payments["id"], catch_all["id"], third["id"]]
    moved = api("PUT", "/v1/routes/order", {"ids": order})
    assert [r["id"] for r in moved["items"]] == order
    assert [r["id"] for r in api("GET", "/v1/routes")["items"]] == order
    assert first_match() == "payments"  # the notifier reads the new order

    stale = [
        order[:2],  # one missing (added since the list was read)
        [*order, "01NOSUCHROUTE0000000000000"],
        [order[0], order[0], order[1], order[2]],
    ]
    for ids in stale:
        refused = api("PUT", "/v1/routes/order", {"ids": ids}, status=409)
        assert refused["error"] == "conflict" and "every route once" in refused["detail"]
    assert [r["id"] for r in api("GET", "/v1/routes")["items"]] == order
    logged = api("GET", "/v1/audit?action=route.reorder")["items"]
    assert [e["detail"]["ids"] for e in logged] == [order]

"""Hostile input on the REST API (issue 13): times out of range or without an offset,
lone surrogates, one error shape for every 4xx."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import TenantHandle, cli_environment, drain
from dd0c_alert.cli import app as cli
from dd0c_alert.domain.times import InvalidTime, as_utc, parse_time
from dd0c_alert.pipeline.limits import ApiLimits
from dd0c_alert.pipeline.runtime import Runtime
from test_smoke_custom import sign

SECRET = "s3cret"
EARLY = "0001-01-01T00:00:00"
LATE = "9999-12-31T23:59:59-14:00"


def _request(
    client: TestClient, tenant: TenantHandle, method: str, path: str, body: Any = None
) -> Any:
    raw = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    headers = {**tenant.auth, "content-type": "application/json"}
    return client.request(method, path, content=raw, headers=headers)


def _is_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    doc: dict[str, Any] = response.json()
    assert isinstance(doc.get("error"), str) and isinstance(doc.get("detail"), str), doc
    if code is not None:
        assert doc["error"] == code, doc
    return doc


# --- times --------------------------------------------------------------------------------


def test_the_one_time_rule() -> None:
    assert parse_time("2026-03-01T10:00:00", "since") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T10:00:00+02:00", "x") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    for text in (EARLY, LATE, "1969-12-31T23:59:59Z", "9999-06-01T00:00:00Z", "yesterday"):
        with pytest.raises(InvalidTime, match=r"^until: "):
            parse_time(text, "until")
    with pytest.raises(InvalidTime):
        as_utc(datetime.max.replace(tzinfo=UTC), "ends_at")


@pytest.mark.parametrize(
    ("method", "path", "body", "name"),
    [
        ("GET", f"/v1/alerts?since={EARLY}", None, "since"),
        ("GET", "/v1/alerts?until=9999-12-31T23:59:59%2D14:00", None, "until"),
        ("GET", f"/v1/deploys?since={EARLY}", None, "since"),
        ("GET", f"/v1/incidents?until={EARLY}", None, "until"),
        ("GET", "/v1/incidents?since=9999-12-31T23:59:59%2D14:00", None, "since"),
        ("POST", "/v1/silences", {"matchers": '{service="a"}', "starts_at": EARLY}, "starts_at"),
        ("POST", "/v1/silences", {"matchers": '{service="a"}', "ends_at": LATE}, "ends_at"),
        ("POST", "/v1/replay", {"since": EARLY}, "since"),
        ("POST", "/v1/replay", {"since": "2026-01-01T00:00:00Z", "until": LATE}, "until"),
        (
            "POST",
            "/v1/replay",
            {
                "since": "2026-01-01T00:00:00Z",
                "silences": [{"matchers": '{service="a"}', "ends_at": LATE}],
            },
            "silences[0].ends_at",
        ),
    ],
)
def test_out_of_range_times_are_refused_by_name(
    client: TestClient, tenant: TenantHandle, method: str, path: str, body: Any, name: str
) -> None:
    doc = _is_error(_request(client, tenant, method, path, body), 422, "invalid_time")
    assert name in doc["detail"] and "supported range" in doc["detail"]


@pytest.fixture
def eastern() -> Iterator[None]:
    """The server's local time is UTC-5 (UTC-4 in summer): an offset-less time read as
    local time would be off by hours."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_an_offset_less_time_is_utc_not_server_local_time(
    client: TestClient, runtime: Runtime, eastern: None
) -> None:
    created = runtime.store.create_tenant("acme")
    tenant = TenantHandle(created.id, runtime.store.create_api_key(created.id, "k"), runtime)
    tenant.integration("custom", SECRET)
    started = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    body = json.dumps({"title": "t", "service": "s", "started_at": started.isoformat()}).encode()
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign(SECRET, body))
    assert response.status_code == 202, response.text
    drain(runtime)
    naive = started.replace(tzinfo=None)

    def count(query: str) -> int:
        response = _request(client, tenant, "GET", f"/v1/alerts?{query}")
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    assert count(f"since={naive.isoformat()}") == 1
    assert count(f"since={(naive + timedelta(seconds=1)).isoformat()}") == 0
    assert count(f"until={(naive + timedelta(seconds=1)).isoformat()}") == 1
    assert count(f"until={naive.isoformat()}") == 0


def test_an_unencoded_plus_offset_in_a_query_string_is_an_offset(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    """``?since=...T11:00:00+02:00`` as typed (the query string decodes ``+`` to a
    space) means +02:00, exactly as ``%2B02:00``; it used to be refused with 422."""
    tenant.integration("custom", SECRET)
    started = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    body = json.dumps({"title": "t", "service": "s", "started_at": started.isoformat()}).encode()
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign(SECRET, body))
    assert response.status_code == 202, response.text
    drain(runtime)
    east = started.astimezone(timezone(timedelta(hours=2))).replace(tzinfo=None).isoformat()
    for path in ("/v1/alerts", "/v1/incidents"):
        for offset, found in (("+02:00", 1), ("%2B02:00", 1), ("+01:00", 0), ("+0200", 1)):
            response = _request(client, tenant, "GET", f"{path}?since={east}{offset}")
            assert response.status_code == 200, (offset, response.text)
            assert len(response.json()["items"]) == found, (path, offset)
    refused = _request(client, tenant, "GET", f"/v1/alerts?since={east}+2:0")
    assert refused.status_code == 422


def test_cli_replay_refuses_out_of_range_times_by_option(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli_environment(monkeypatch, tmp_path / "cli")
    runner = CliRunner()
    created = runner.invoke(cli, ["tenant", "create", "acme", "--json"])
    assert created.exit_code == 0, created.output
    tenant_id = json.loads(created.output)["tenant_id"]
    for args, option in (
        (["--since", EARLY], "--since"),
        (["--since", "2026-01-01T00:00:00", "--until", LATE], "--until"),
    ):
        result = runner.invoke(cli, ["replay", "--tenant", tenant_id, *args])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.replace("│", " ").split())
        assert f"{option}: " in text and "supported range" in text, text


# --- lone surrogates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/v1/silences", b'{"matchers": "{service=\\"\\ud800\\"}"}'),
        ("POST", "/v1/silences", b'{"matchers": [{"name": "a", "op": "=", "value": "\\ud800"}]}'),
        ("POST", "/v1/silences", b'{"matchers": "{service=\\"a\\"}", "comment": "\\ud800"}'),
        ("POST", "/v1/inhibitions", b'{"source": "{a=\\"\\udfff\\"}", "target": "{b=\\"c\\"}"}'),
        ("PUT", "/v1/topology", b'{"dependencies": {"\\ud800": ["b"]}}'),
        ("PUT", "/v1/topology", b'{"dependencies": {"a": ["\\ud800"]}}'),
        ("PATCH", "/v1/settings", b'{"never_suppress_services": ["\\ud800"]}'),
        ("POST", "/v1/replay", b'{"since": "2026-01-01T00:00:00Z", "settings": {"\\ud800": 1}}'),
    ],
)
def test_a_lone_surrogate_anywhere_is_a_422(
    client: TestClient, tenant: TenantHandle, method: str, path: str, raw: bytes
) -> None:
    doc = _is_error(_request(client, tenant, method, path, raw), 422, "invalid_request")
    assert "surrogate" in doc["detail"]
    listed = _request(client, tenant, "GET", "/v1/silences")
    assert listed.status_code == 200 and listed.json() == {"items": []}


# --- one error shape ----------------------------------------------------------------------


def test_every_4xx_has_error_and_detail(client: TestClient, tenant: TenantHandle) -> None:
    _is_error(client.get("/v1/no-such-route", headers=tenant.auth), 404, "not_found")
    _is_error(client.get("/nothing-here"), 404, "not_found")
    _is_error(client.delete("/v1/alerts", headers=tenant.auth), 405, "method_not_allowed")
    _is_error(client.get("/v1/alerts"), 401, "unauthorized")
    _is_error(client.get("/v1/alerts/nope", headers=tenant.auth), 404, "not_found")
    doc = _is_error(client.get("/v1/alerts?limit=0", headers=tenant.auth), 422, "invalid_request")
    assert "limit" in doc["detail"] and doc["errors"][0]["loc"] == ["query", "limit"]
    for listing in ("alerts", "incidents", "deploys"):  # a misspelt status finds nothing
        bogus = client.get(f"/v1/{listing}?status=bogus", headers=tenant.auth)
        _is_error(bogus, 422, "invalid_request")
    assert client.get("/v1/deploys?status=success", headers=tenant.auth).status_code == 200
    _is_error(_request(client, tenant, "POST", "/v1/silences", b"{oops"), 422, "invalid_request")
    _is_error(_request(client, tenant, "POST", "/v1/silences", b"[NaN]"), 422, "invalid_request")
    body = b"{}"
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign("x", body))
    _is_error(response, 401)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/api-keys", "GET, POST"),
        ("PUT", "/v1/routes/r1", "DELETE, GET, PATCH"),
        ("POST", "/v1/settings", "GET, PATCH"),
        ("GET", "/v1/inhibitions/r1", "DELETE, PUT"),
        ("PUT", "/v1/incidents", "GET"),
        ("DELETE", "/settings/routes", "GET"),  # a dashboard page: same header
    ],
)
def test_a_405_allows_every_method_of_the_resource(
    client: TestClient, tenant: TenantHandle, method: str, path: str, allow: str
) -> None:
    """RFC 9110: a 405's ``Allow`` lists the resource's methods. Starlette named only
    the first route's, one method of several (schemathesis' allow_header_conformance)."""
    response = client.request(method, path, headers=tenant.auth)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


# --- the schema names every error --------------------------------------------------------

#: (method, URL, the operation's path in the schema, who asks, body, status): one of each
#: error the shared machinery answers, which no route declared itself.
_ERRORS = [
    ("GET", "/v1/incidents", "/v1/incidents", "nobody", None, 401),
    ("POST", "/v1/routes", "/v1/routes", "viewer", {"name": "r"}, 403),
    ("GET", "/v1/incidents/nope", "/v1/incidents/{incident_id}", "admin", None, 404),
    ("DELETE", "/v1/api-keys/nope", "/v1/api-keys/{key_id}", "admin", None, 404),
    ("POST", "/v1/incidents/nope/ack", "/v1/incidents/{incident_id}/ack", "admin", None, 404),
    ("GET", "/v1/alerts?cursor=nope", "/v1/alerts", "admin", None, 400),
    ("GET", "/v1/suppressions?cursor=nope", "/v1/suppressions", "admin", None, 400),
    ("POST", "/v1/silences", "/v1/silences", "admin", {"comment": "x" * 1_100_000}, 413),
    (
        "POST",
        "/v1/auth/login",
        "/v1/auth/login",
        "nobody",
        {"email": "a@b.c", "password": "p"},
        401,
    ),
    ("POST", "/v1/auth/refresh", "/v1/auth/refresh", "nobody", {"refresh_token": "nope"}, 401),
    ("POST", "/v1/auth/switch", "/v1/auth/switch", "admin", {"tenant_id": "t"}, 403),
    ("POST", "/v1/invitations/accept", "/v1/invitations/accept", "nobody", {"token": "t"}, 401),
]


def test_every_error_answered_is_documented_with_its_shape(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    """Found from outside by schemathesis' status-code check: 401, 403, 404, a bad
    cursor's 400 and 413 were answered by operations whose schema listed only 200/422,
    so a client generated from the schema had no case for them."""
    viewer, _ = runtime.store.accounts().create_api_key(tenant.id, "viewer", "read")
    headers = {"nobody": {}, "admin": tenant.auth, "viewer": {"Authorization": f"Bearer {viewer}"}}
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    for method, url, path, who, body, status in _ERRORS:
        response = client.request(method, url, headers=headers[who], json=body)
        _is_error(response, status)
        documented = paths[path][method.lower()]["responses"]
        assert str(status) in documented, (method, path, status, sorted(documented))
        shape = documented[str(status)]["content"]["application/json"]["schema"]
        assert shape == {"$ref": "#/components/schemas/Error"}, (method, path, shape)


# --- NUL characters, and what a bug answers ------------------------------------------------


def test_nul_characters_are_refused_alike_on_either_store(
    client: TestClient, tenant: TenantHandle
) -> None:
    """PostgreSQL text cannot hold NUL: each of these was a plain-text 500 there and
    stored as given on SQLite."""
    nul = "a\u0000b"
    for method, path, body in (
        ("POST", "/v1/auth/login", {"email": f"{nul}@example.com", "password": "x" * 12}),
        ("POST", "/v1/api-keys", {"name": nul, "scope": "read"}),
        ("POST", "/v1/silences", {"matchers": '{service="db"}', "comment": nul}),
        ("PUT", "/v1/topology", {"dependencies": {nul: ["db"]}}),
        ("PATCH", "/v1/settings", {"never_suppress_services": [nul]}),
        ("POST", "/v1/silences", {"matchers": '{service="db"}', "deep": [[[[{"k": nul}]]]]}),
    ):
        doc = _is_error(_request(client, tenant, method, path, body), 422, "invalid_request")
        assert "NUL" in doc["detail"], (path, doc)
    for path in ("/v1/incidents?q=a%00b", "/v1/alerts/a%00b", "/v1/incidents/x%00/ack"):
        method = "POST" if path.endswith("/ack") else "GET"
        doc = _is_error(_request(client, tenant, method, path), 422, "invalid_request")
        assert "NUL" in doc["detail"]
    assert client.get("/v1/silences", headers=tenant.auth).json()["items"] == []
    form = client.post("/login", data={"email": "a\x00@example.com", "password": "x" * 12})
    assert form.status_code in (400, 403) and "text/html" in form.headers["content-type"]


def test_a_bug_answers_500_in_the_error_shape(
    runtime: Runtime, tenant: TenantHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dd0c_alert.web.app import create_app  # noqa: PLC0415

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(type(runtime.store), "list_incidents", broken)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        response = client.get("/v1/incidents", headers=tenant.auth)
        _is_error(response, 500, "internal_error")
        assert "a bug" not in response.text  # the log has it, not the caller


# --- limits -------------------------------------------------------------------------------


def test_every_json_endpoint_has_a_body_cap_also_when_chunked(
    client: TestClient, tenant: TenantHandle
) -> None:
    big = json.dumps({"matchers": '{service="a"}', "comment": "x" * (1024 * 1024)}).encode()
    doc = _is_error(_request(client, tenant, "POST", "/v1/silences", big), 413, "body_too_large")
    assert "DD0C_API_MAX_BODY_BYTES" in doc["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        yield b'{"matchers": "{service=\\"a\\"}", "comment": "'
        for _ in range(80):
            yield b"y" * 16_384
        yield b'"}'

    headers = {**tenant.auth, "content-type": "application/json"}
    response = client.post("/v1/silences", content=chunks(), headers=headers)
    _is_error(response, 413, "body_too_large")
    assert client.get("/v1/silences", headers=tenant.auth).json() == {"items": []}


def test_a_700_by_700_topology_is_refused(client: TestClient, tenant: TenantHandle) -> None:
    names = [f"service-{i:03d}" for i in range(700)]
    deps = {name: [n for n in names if n != name] for name in names}
    response = _request(client, tenant, "PUT", "/v1/topology", {"dependencies": deps})
    _is_error(response, 413, "body_too_large")
    # under the body cap but over the edge cap (10,000): refused by name
    compact = {f"s{i}": [f"s{j}" for j in range(101) if j != i] for i in range(101)}
    doc = _is_error(
        _request(client, tenant, "PUT", "/v1/topology", {"dependencies": compact}),
        422,
        "limit_exceeded",
    )
    assert "10000" in doc["detail"] and "DD0C_MAX_TOPOLOGY_EDGES" in doc["detail"]
    many = {f"s{i}": [f"t{i}"] for i in range(1001)}  # 2,002 services
    doc = _is_error(
        _request(client, tenant, "PUT", "/v1/topology", {"dependencies": many}),
        422,
        "limit_exceeded",
    )
    assert "DD0C_MAX_TOPOLOGY_SERVICES" in doc["detail"]
    replay = {"since": "2026-01-01T00:00:00Z", "dependencies": compact}
    _is_error(_request(client, tenant, "POST", "/v1/replay", replay), 422, "limit_exceeded")
    services = [f"s{i}" for i in range(501)]
    replay = {"since": "2026-01-01T00:00:00Z", "settings": {"never_suppress_services": services}}
    doc = _is_error(_request(client, tenant, "POST", "/v1/replay", replay), 422, "limit_exceeded")
    assert "DD0C_MAX_NEVER_SUPPRESS_SERVICES" in doc["detail"]
    assert client.get("/v1/topology", headers=tenant.auth).json() == {"dependencies": {}}
    at_cap = {f"s{i}": [f"s{j}" for j in range(100) if j != i] for i in range(100)}  # 9,900
    assert _request(client, tenant, "PUT", "/v1/topology", {"dependencies": at_cap}).is_success


def test_rule_counts_are_capped(client: TestClient, tenant: TenantHandle, runtime: Runtime) -> None:
    matchers = ", ".join(f'l{i}="v"' for i in range(33))
    doc = _is_error(
        _request(client, tenant, "POST", "/v1/silences", {"matchers": "{" + matchers + "}"}),
        422,
        "limit_exceeded",
    )
    assert "DD0C_MAX_MATCHERS_PER_RULE" in doc["detail"]
    inhibition = {"source": "{" + matchers + "}", "target": '{a="b"}'}
    _is_error(_request(client, tenant, "POST", "/v1/inhibitions", inhibition), 422)
    doc = _is_error(
        _request(
            client,
            tenant,
            "PATCH",
            "/v1/settings",
            {"never_suppress_services": [f"s{i}" for i in range(501)]},
        ),
        422,
        "limit_exceeded",
    )
    assert "DD0C_MAX_NEVER_SUPPRESS_SERVICES" in doc["detail"]

    runtime.api_limits = ApiLimits(max_silences=2, max_inhibitions=1)
    for n in range(2):
        body = {"matchers": f'{{service="s{n}"}}'}
        assert _request(client, tenant, "POST", "/v1/silences", body).status_code == 201
    doc = _is_error(
        _request(client, tenant, "POST", "/v1/silences", {"matchers": '{service="x"}'}),
        422,
        "limit_exceeded",
    )
    assert "DD0C_MAX_SILENCES" in doc["detail"]
    rule = {"source": '{a="b"}', "target": '{c="d"}'}
    assert _request(client, tenant, "POST", "/v1/inhibitions", rule).status_code == 201
    doc = _is_error(_request(client, tenant, "POST", "/v1/inhibitions", rule), 422)
    assert "DD0C_MAX_INHIBITIONS" in doc["detail"]


def test_swagger_ui_is_served_by_the_app_not_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(url.startswith("/static/swagger/") for url in assets), assets
    assert "cdn" not in page.text.lower()
    for url in assets:
        assert client.get(url).status_code == 200, url
    assert client.get("/redoc").status_code == 404  # no CDN-only docs page either

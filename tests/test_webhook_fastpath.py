"""The webhook endpoint is a raw ASGI handler in front of FastAPI: what it owns under
``/v1/wh/`` (404, 405, the trailing-slash redirect), how it reads a body under the cap,
what it answers with, and that /openapi.json still documents it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from conftest import TenantHandle, drain
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.sqlite_queue import SqliteIngestQueue
from dd0c_alert.web.app import create_app

ALERT = b'{"alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"}}]}'


def _error(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == reason
    assert body["detail"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("suffix", ["", "/some-integration"])
def test_other_methods_are_405_with_allow(
    client: Any, tenant: TenantHandle, method: str, suffix: str
) -> None:
    response = client.request(method, f"/v1/wh/{tenant.id}/alertmanager{suffix}")
    _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    "path", ["/v1/wh/T/alertmanager/i/extra", "/v1/wh/T", "/v1/wh/", "/v1/wh//alertmanager"]
)
def test_paths_that_are_not_a_webhook_are_404_json(client: Any, path: str) -> None:
    _error(client.post(path, content=ALERT), 404, "not_found")


def test_trailing_slash_is_redirected_as_before(client: Any, tenant: TenantHandle) -> None:
    response = client.post(
        f"/v1/wh/{tenant.id}/alertmanager/?x=1", content=ALERT, follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"].endswith(f"/v1/wh/{tenant.id}/alertmanager?x=1")


def test_accepted_duplicate_and_auth_headers(
    runtime: Runtime, client: Any, tenant: TenantHandle
) -> None:
    integration = tenant.integration("alertmanager", "s3cret")
    headers = {"Authorization": "Bearer s3cret", "Idempotency-Key": "delivery-1"}
    url = f"/v1/wh/{tenant.id}/alertmanager/{integration}"

    first = client.post(url, content=ALERT, headers=headers)
    assert first.status_code == 202, first.text
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"event_id": first.json()["event_id"], "status": "accepted"}
    again = client.post(url, content=ALERT, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}

    wrong = client.post(url, content=ALERT, headers={"Authorization": "Bearer nope"})
    _error(wrong, 401, "signature_mismatch")
    assert wrong.headers["www-authenticate"] == "Bearer"
    drain(runtime)


def test_a_delivery_the_queue_cannot_commit_is_503_and_stores_nothing(
    runtime: Runtime, client: Any, tenant: TenantHandle
) -> None:
    if not isinstance(runtime.queue, SqliteIngestQueue):
        pytest.skip("fills the SQLite queue file")
    integration = tenant.integration("alertmanager", "s3cret")
    url = f"/v1/wh/{tenant.id}/alertmanager/{integration}"
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post(url, content=ALERT, headers=auth).status_code == 202
    # The queue file is "full": SQLite's own disk-full error on the next insert, on
    # either connection that commits webhooks (the event loop's, the writer thread's).
    queue = runtime.queue
    writers = [*queue._loop_conns.values(), queue._writer_conn]
    assert writers[0] is not None
    for writer in filter(None, writers):
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute(f"PRAGMA max_page_count={pages}")
    labels = {f"label{n}": "x" * 200 for n in range(300)}  # needs pages of its own
    big = orjson.dumps({"alerts": [{"status": "firing", "labels": labels}]})

    refused = client.post(url, content=big, headers=auth)

    _error(refused, 503, "unavailable")
    assert refused.headers["retry-after"] == "5"
    writer.execute(f"PRAGMA max_page_count={1 << 30}")
    assert client.post(url, content=big, headers=auth).status_code == 202  # sent again
    drain(runtime)
    alerts = client.get("/v1/alerts?limit=100", headers=tenant.auth).json()["items"]
    assert len(alerts) == 2  # the first delivery and the one sent again: none half-stored


def test_openapi_still_documents_the_webhook_paths(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    for path, params in [
        ("/v1/wh/{tenant_id}/{provider}", ["tenant_id", "provider"]),
        (
            "/v1/wh/{tenant_id}/{provider}/{integration_id}",
            ["tenant_id", "provider", "integration_id"],
        ),
    ]:
        assert set(spec["paths"][path]) == {"post"}
        operation = spec["paths"][path]["post"]
        assert operation["tags"] == ["webhooks"]
        assert operation["summary"]
        assert [p["name"] for p in operation["parameters"]] == params
        assert operation["requestBody"]["required"] is True
        assert set(operation["responses"]) == {
            "200",
            "202",
            "400",
            "401",
            "404",
            "408",
            "413",
            "415",
            "429",
            "503",
        }
        assert "body_too_large" in operation["responses"]["413"]["description"]
    assert "/v1/alerts" in spec["paths"]  # FastAPI's own routes are still there
    assert client.get("/docs").status_code == 200


def _call(
    app: Any, method: str, path: str, messages: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Drive the ASGI app by hand: what it sent, and how many messages it received."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }
    pending = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, len(messages) - len(pending)


def test_chunked_body_over_the_cap_is_413_without_reading_the_rest(runtime: Runtime) -> None:
    app = create_app(runtime)  # no lifespan needed: the body is refused before admission
    cap = runtime.ingest.limits.max_body_bytes
    chunk = b"x" * (cap // 4 + 1)
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(8)]

    sent, received = _call(app, "POST", "/v1/wh/T/alertmanager", messages)

    assert received == 4  # stopped as soon as the cap was passed
    start, body = sent
    assert start["status"] == 413
    assert (b"content-type", b"application/json") in start["headers"]
    assert orjson.loads(body["body"])["error"] == "body_too_large"


def test_a_client_gone_before_the_body_gets_no_answer(runtime: Runtime) -> None:
    app = create_app(runtime)
    messages = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent, received = _call(app, "POST", "/v1/wh/T/alertmanager", messages)
    assert (sent, received) == ([], 2)

"""Webhook deliveries on the wire, against a real ``dd0c-alert serve``: a plain delivery
(``Content-Length``) takes the protocol's fast path past ASGI, a chunked one the ASGI
handler, and both must answer byte for byte alike but for the event id and the date.
Keep-alive, pipelining behind a fast delivery, HTTP/1.0 and ``Connection: close``
behave as uvicorn's own cycle does."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest

from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from servers import free_port, start_serve

SECRET = "wire-secret"
ALERT = b'{"alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"}}]}'


@dataclass(frozen=True)
class Server:
    port: int
    tenant: str
    integration: str

    def path(self, provider: str = "alertmanager", integration: bool = True) -> str:
        suffix = f"/{self.integration}" if integration else ""
        return f"/v1/wh/{self.tenant}/{provider}{suffix}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("wire")
    setup = build_runtime(Settings(data_dir=data, secret_key=""), roles=frozenset())
    tenant = setup.store.create_tenant("wire")
    integration = setup.store.create_integration(tenant.id, "alertmanager", "am", SECRET)
    setup.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "OTEL_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env |= {"DD0C_DATA_DIR": str(data), "DD0C_SUGGEST_INTERVAL_SECONDS": "0"}
    port = free_port()
    process = start_serve(env, port, data / "serve.log")
    try:
        yield Server(port, tenant.id, integration.id)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    # Whatever the tests sent, nothing failed inside (a fast-path error is logged).
    assert "Traceback" not in (data / "serve.log").read_text()


def _request(
    path: str,
    body: bytes = ALERT,
    *,
    chunked: bool = False,
    version: str = "1.1",
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [f"POST {path} HTTP/{version}", "Host: x", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        document: dict[str, object] = orjson.loads(self.body)
        return document


class Connection:
    """One TCP connection that reads responses by their Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.buffer = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self) -> Response:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"closed before a response: {self.buffer!r}"
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            assert name.lower() not in headers, f"header {name} twice"
            headers[name.lower()] = value
        length = int(headers["content-length"])
        while len(rest) < length:
            assert self._fill()
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return Response(int(lines[0].split()[1]), headers, rest[:length])

    def closed_by_server(self) -> bool:
        try:
            return not self._fill() and not self.buffer
        except ConnectionResetError:
            return True


def _one(port: int, data: bytes) -> Response:
    with Connection(port) as conn:
        conn.send(data)
        return conn.response()


def _comparable(response: Response) -> tuple[int, dict[str, str], dict[str, object]]:
    headers = {k: v for k, v in response.headers.items() if k != "date"}
    body = response.json()
    if "event_id" in body:
        body["event_id"] = "<id>"
    return response.status, headers, body


CASES = {
    "accepted": dict(headers={"Authorization": f"Bearer {SECRET}"}),
    "wrong secret": dict(headers={"Authorization": "Bearer nope"}),
    "no secret": dict(),
    "invalid json": dict(body=b"{nope", headers={"Authorization": f"Bearer {SECRET}"}),
    "unknown provider": dict(provider="nagios"),
    "by path without integration": dict(
        integration=False, headers={"Authorization": f"Bearer {SECRET}"}
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_fast_and_asgi_paths_answer_alike(server: Server, case: str) -> None:
    spec = dict(CASES[case])
    path = server.path(
        str(spec.pop("provider", "alertmanager")), bool(spec.pop("integration", True))
    )
    body = spec.pop("body", ALERT)
    headers = spec.pop("headers", {})
    assert isinstance(body, bytes) and isinstance(headers, dict)
    fast = _one(server.port, _request(path, body, headers=headers))
    asgi = _one(server.port, _request(path, body, headers=headers, chunked=True))
    assert _comparable(fast) == _comparable(asgi)
    assert fast.headers["content-type"] == "application/json"


def test_a_repeated_delivery_id_is_a_duplicate_on_both_paths(server: Server) -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "Idempotency-Key": "wire-1"}
    first = _one(server.port, _request(server.path(), headers=headers))
    fast = _one(server.port, _request(server.path(), headers=headers))
    asgi = _one(server.port, _request(server.path(), headers=headers, chunked=True))
    assert first.status == 202
    assert fast.status == asgi.status == 200
    assert (
        fast.json() == asgi.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}
    )


def test_deliveries_on_one_kept_alive_connection(server: Server) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    with Connection(server.port) as conn:
        ids = set()
        for _ in range(5):
            conn.send(_request(server.path(), headers=auth))
            answer = conn.response()
            assert answer.status == 202
            assert "connection" not in answer.headers
            ids.add(answer.json()["event_id"])
        assert len(ids) == 5


def test_requests_pipelined_behind_a_fast_delivery_are_answered_in_order(
    server: Server,
) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with Connection(server.port) as conn:
        conn.send(
            _request(server.path(), headers=auth)
            + health
            + _request(server.path(), headers={"Authorization": "Bearer nope"})
            + _request(server.path(), headers=auth)
        )
        answers = [conn.response() for _ in range(4)]
    assert [a.status for a in answers] == [202, 200, 401, 202]
    assert answers[1].json()["status"] == "ok"
    assert answers[0].json()["event_id"] != answers[3].json()["event_id"]


@pytest.mark.parametrize(("version", "headers"), [("1.0", {}), ("1.1", {"Connection": "close"})])
def test_a_delivery_that_asks_to_close_is_answered_then_closed(
    server: Server, version: str, headers: dict[str, str]
) -> None:
    with Connection(server.port) as conn:
        conn.send(
            _request(
                server.path(),
                version=version,
                headers={"Authorization": f"Bearer {SECRET}", **headers},
            )
        )
        answer = conn.response()
        assert answer.status == 202
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server()


def test_a_declared_body_over_the_cap_is_refused_unread(server: Server) -> None:
    with Connection(server.port) as conn:
        head = f"POST {server.path()} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 30}\r\n\r\n"
        conn.send(head.encode())
        answer = conn.response()
    assert answer.status == 413
    assert answer.json()["error"] == "body_too_large"


def test_a_client_gone_before_its_answer_leaves_the_server_serving(server: Server) -> None:
    for _ in range(20):
        with Connection(server.port) as conn:
            conn.send(_request(server.path(), headers={"Authorization": f"Bearer {SECRET}"}))
    answer = _one(
        server.port, _request(server.path(), headers={"Authorization": f"Bearer {SECRET}"})
    )
    assert answer.status == 202

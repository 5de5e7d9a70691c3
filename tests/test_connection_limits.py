"""Connections cannot be held hostage: a real `dd0c-alert serve` on sockets. Trickled
or missing headers and bodies are cut off (header and body timeouts, 1 s here), an
idle keep-alive connection is closed, oversized headers are refused, and connections
beyond the per-process cap get 503. Bodies: with
DD0C_HTTP_BODY_TIMEOUT_SECONDS=1, answers 408 `request_timeout` and closes the
connection when a body stalls or trickles, on the webhook path and the REST API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CLI = Path(sys.executable).parent / "dd0c-alert"
TIMEOUT = 1.0
CONNECTIONS = 20
PATHS = ["/v1/wh/01JZZZZZZZZZZZZZZZZZZZZZZZ/custom", "/v1/silences"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    data = tmp_path_factory.mktemp("body-timeout")
    port = _free_port()
    env = {
        **os.environ,
        "DD0C_DATA_DIR": str(data),
        "DD0C_HTTP_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
        "DD0C_HTTP_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "DD0C_HTTP_KEEP_ALIVE_SECONDS": str(TIMEOUT),
        "DD0C_HTTP_MAX_HEADER_BYTES": "16384",
        "DD0C_MAX_CONNECTIONS": str(CONNECTIONS),
        "DD0C_SUGGEST_INTERVAL_SECONDS": "0",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DD0C_ARCHIVE_URL"):
        env.pop(name, None)
    log = data / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts slowly
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response up to the server closing the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _open(port: int, path: str, framing: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer dd0c_nope\r\n{framing}\r\n".encode()
    )
    return sock


@pytest.mark.parametrize("path", PATHS)
def test_a_stalled_body_is_408_and_closed(port: int, path: str) -> None:
    with _open(port, path, "Content-Length: 100\r\n") as sock:
        sock.sendall(b'{"title": "half a bo')
        started = time.monotonic()
        status, headers, body = _answer(sock)  # returns once the server closes
        waited = time.monotonic() - started
    assert status == 408
    assert json.loads(body)["error"] == "request_timeout"
    assert "DD0C_HTTP_BODY_TIMEOUT_SECONDS" in json.loads(body)["detail"]
    assert headers.get("connection") == "close"
    assert TIMEOUT * 0.9 <= waited < TIMEOUT + 3


@pytest.mark.parametrize("path", PATHS)
def test_a_trickled_body_is_cut_off_at_the_deadline_for_the_whole_body(
    port: int, path: str
) -> None:
    """A byte every 0.2 s never stalls for a second, but the body as a whole does."""
    with _open(port, path, "Transfer-Encoding: chunked\r\n") as sock:
        started = time.monotonic()
        sock.settimeout(0.2)
        answer = b""
        while time.monotonic() - started < TIMEOUT + 3:
            try:
                sock.sendall(b"1\r\n \r\n")
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            break
        waited = time.monotonic() - started
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"request_timeout" in answer
    assert TIMEOUT * 0.9 <= waited < TIMEOUT + 3


def test_a_prompt_body_is_unaffected(port: int) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{port}{PATHS[0]}", content=b'{"title": "x"}', timeout=5
    )
    assert response.status_code == 401  # read whole; refused for its credentials only


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing the connection (it must close in time)."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {seconds} s") from None
    except ConnectionResetError:
        pass  # reset instead of a clean close: closed all the same
    return data


def test_trickled_or_missing_headers_are_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as idle:  # sends nothing at all
        assert _closed_within(idle, TIMEOUT * 4).startswith(b"HTTP/1.1 408")
    with socket.create_connection(("127.0.0.1", port)) as trickle:
        started = time.monotonic()
        try:
            for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n") * 20:
                trickle.sendall(piece)
                time.sleep(0.3)
        except OSError:
            pass  # closed on us: that is the point
        _closed_within(trickle, TIMEOUT * 4)
        assert time.monotonic() - started < TIMEOUT * 6


def test_oversized_headers_are_refused(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
        with contextlib.suppress(OSError):
            sock.sendall(head)
        answer = _closed_within(sock, TIMEOUT * 4)
        assert answer == b"" or answer.split(b" ")[1] in (b"431", b"400", b"413")


def _first_bytes(sock: socket.socket) -> bytes:
    sock.settimeout(TIMEOUT * 4)
    return sock.recv(65536)


def test_a_header_block_over_the_cap_in_one_read_is_refused(port: int) -> None:
    """The cap (16 KiB here) holds when the whole block arrives at once, also on a
    kept-alive connection's next request; a block under it, and one whose blank line
    is split across two writes ahead of a larger body, are served."""
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(big)
        assert _first_bytes(sock).startswith(b"HTTP/1.1 431")
    under = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 15_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(under)
        assert _first_bytes(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(big)
        assert _first_bytes(sock).startswith(b"HTTP/1.1 431")
    body = b"x" * 40_000
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/wh/01JZZZZZZZZZZZZZZZZZZZZZZZ/custom HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\n\r" % len(body)
        )
        time.sleep(0.2)
        sock.sendall(b"\n" + body)
        assert _first_bytes(sock).startswith(b"HTTP/1.1 400")  # not JSON: read and judged


def test_what_the_parser_refuses_is_answered_in_json(port: int) -> None:
    for request in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request)
            status, headers, body = _answer(sock)
        assert status == 400 and headers["content-type"] == "application/json"
        assert json.loads(body)["error"] == "bad_request"


def test_an_idle_keep_alive_connection_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(2)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        _closed_within(sock, TIMEOUT * 8)  # then nothing: closed after the idle timeout


def test_connections_beyond_the_cap_get_503(port: int) -> None:
    """Connections answered one by one up to the cap stay open (keep-alive); the next
    one is refused. One at a time, so the result does not depend on how many
    connections the event loop accepts before it reads the first request."""
    held: list[socket.socket] = []

    def status_of_new_connection() -> bytes:
        sock = socket.create_connection(("127.0.0.1", port))
        held.append(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        return sock.recv(65536).split(b" ")[1]

    try:
        assert [status_of_new_connection() for _ in range(CONNECTIONS - 1)] == [b"200"] * (
            CONNECTIONS - 1
        )
        assert status_of_new_connection() == b"503"
    finally:
        for sock in held:
            sock.close()

"""A webhook receiver stand-in: a real HTTP server on 127.0.0.1 recording every request.

Answers are scripted in order, one per request, then 200::

    with WebhookReceiver() as hook:
        hook.script("429:5", "500", "hang:3", "410")
        ...  # post to hook.url ("/any/path" works too: hook.url + "/x")

``<status>[:<Retry-After>]`` answers that status (with the header when given);
``hang[:S]`` closes the connection unanswered after S seconds (default 10);
``big:<MiB>[:<status>]`` answers the status (default 200) with a body of that many MiB,
sent as fast as it is read; ``drip:<S>[:<status>]`` answers the status (default 200)
and sends its body one byte a second for S seconds;
``redirect:<status>`` answers that 3xx with ``Location`` pointing at ``/moved`` here.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float
    answer: str


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._answers: deque[str] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def script(self, *answers: str) -> None:
        with self._lock:
            self._answers.extend(answers)

    def _next(self, request: Request) -> str:
        with self._lock:
            request.answer = self._answers.popleft() if self._answers else "200"
            self.requests.append(request)
            return request.answer

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver._next(Request(self.path, headers, body, time.time(), ""))
                kind, _, arg = answer.partition(":")
                if kind == "hang":
                    receiver._stopping.wait(float(arg or 10))
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind in ("big", "drip"):
                    size, _, status = arg.partition(":")
                    self._stream(kind, float(size), int(status or 200))
                    return
                if kind == "redirect":
                    self.send_response(int(arg))
                    self.send_header("Location", "/moved")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(int(kind))
                if arg:
                    self.send_header("Retry-After", arg)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _stream(self, kind: str, size: float, status: int) -> None:
                """A body too big to hold, or one trickling in: either must not keep
                the sender (its memory, its lane) for ever."""
                chunk = b"x" * (1 << 20)
                length = int(size * len(chunk)) if kind == "big" else int(size)
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                with contextlib.suppress(OSError):
                    if kind == "big":
                        for _ in range(int(size)):
                            self.wfile.write(chunk)
                        return
                    for _ in range(length):
                        if receiver._stopping.wait(1.0):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()

        return Handler

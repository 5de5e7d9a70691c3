"""uvicorn's httptools protocol, guarded against slow or huge requests, with a fast
path for webhook deliveries.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but not a
connection that never sends a byte, nor one that trickles its headers, and httptools
has no header size cap (``h11_max_incomplete_event_size`` is h11's alone). Here each
request's line and headers must arrive within ``header_timeout`` seconds (from the
connection, or from the request's first byte on a kept-alive one) and within
``max_header_bytes``; else the connection is answered 408 / 431 and closed.

It also sends each response in one write: uvicorn writes the status line and headers,
then the body, and with ``TCP_NODELAY`` each write is its own system call and packet
(a quarter of a webhook's CPU in ``serve``'s profile went to the two).

And a plain webhook delivery (POST to a webhook path, a ``Content-Length`` within the
cap, no ``Expect``, no tracing) skips ASGI: the body is gathered from the parser and
handed to ``WebhookEndpoint.admit``, and the answer written as bytes. uvicorn's
request cycle (scope, receive and send messages, a task wrapping the app) cost about
a fifth of a delivery's CPU. Everything else, a pipelined request behind it included,
goes through ASGI as before; the fast path keeps uvicorn's own bookkeeping (its
in-flight tasks for graceful shutdown, keep-alive, the concurrency limit).
"""

from __future__ import annotations

import asyncio
import functools
import http
import logging
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dd0c_alert import tracing

from . import webhooks

log = logging.getLogger("uvicorn.error")
_PREFIX = webhooks.PREFIX.encode()
_INTERNAL_ERROR = {"error": "internal_error", "detail": "the server's log says what failed"}


class CoalescingTransport:
    """A transport whose writes made in one turn of the event loop leave in one send
    at the end of that turn; everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data, self._pending = b"".join(self._pending), []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _FastCycle:
    """What uvicorn's protocol reads of a request cycle (``cycle``), for a delivery on
    the fast path: a request pipelined behind it waits until ``response_complete``."""

    __slots__ = ("disconnected", "keep_alive", "message_event", "response_complete")

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NOTHING_TO_WAKE


class _NothingToWake:
    """No request body is awaited on the fast path: connection_lost has no one to wake."""

    def set(self) -> None:
        pass


_NOTHING_TO_WAKE = _NothingToWake()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    deliveries: webhooks.WebhookEndpoint | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._header_bytes = 0
        self._tail = b""  # the last bytes of the previous read, while in the headers
        self._in_headers = True
        self._awaiting_next = False  # between requests: the next bytes are headers
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._refuse, 408, b"Request Timeout"
        )
        self._fast: list[str] | None = None  # the path's parts while a fast body arrives
        self._fast_body: list[bytes] = []

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            # Counted before parsing: a whole header block in one read would otherwise
            # be complete (and served) before anyone looked at its size. The blank line
            # that ends it may straddle two reads, hence the previous read's last bytes.
            tail = self._tail
            end = (tail + data).find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end + 4 - len(tail)
            self._tail = data[-3:]
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, b"Request Header Fields Too Large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._awaiting_next:  # the next request on a kept-alive connection
            self._awaiting_next = False
            self._stop_timer()
            self._header_timer = self.loop.call_later(
                self.header_timeout, self._refuse, 408, b"Request Timeout"
            )

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_timer()
        parts = self._fast_path()
        if parts is None:
            super().on_headers_complete()
            return
        version = self.parser.get_http_version()
        self.cycle = _FastCycle(version != "1.0" and self.parser.should_keep_alive())  # type: ignore[assignment]
        self._fast, self._fast_body = parts, []
        # The body's deadline, as the ASGI path's: from the end of the headers.
        assert self.deliveries is not None
        self._header_timer = self.loop.call_later(
            self.deliveries.limits.body_timeout_seconds, self._body_timed_out
        )

    def on_body(self, body: bytes) -> None:
        if self._fast is None:
            super().on_body(body)
        else:
            self._fast_body.append(body)

    def on_message_complete(self) -> None:
        # What follows on this connection is the next request's line and headers:
        # counted from its first read on (its deadline starts at its first byte).
        self._in_headers, self._awaiting_next = True, True
        self._header_bytes, self._tail = 0, b""
        if self._fast is None:
            super().on_message_complete()
            return
        self._stop_timer()
        parts, self._fast = self._fast, None
        body, self._fast_body = b"".join(self._fast_body), []
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in self.headers}
        task = self.loop.create_task(self._deliver(self.cycle, parts, headers, body))  # type: ignore[arg-type]
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _fast_path(self) -> list[str] | None:
        """The webhook path's parts when this request can skip ASGI, else None."""
        if (
            self.deliveries is None
            or self.root_path
            or not self.url.startswith(_PREFIX)
            or self.parser.get_method() != b"POST"
            or self.expect_100_continue
            or self.parser.should_upgrade()
            or (self.cycle is not None and not self.cycle.response_complete)
            or tracing.enabled()
        ):
            return None
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency
            or len(self.tasks) >= self.limit_concurrency
        ):
            return None  # uvicorn answers 503
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
            elif name == b"transfer-encoding":
                return None
        if length is None or length > self.deliveries.limits.max_body_bytes:
            return None  # chunked, or over the cap: the ASGI path reads or refuses it
        path = httptools.parse_url(self.url).path
        if b"%" in path:
            return None
        return webhooks.segments(path.decode("ascii"))

    async def _deliver(
        self, cycle: _FastCycle, parts: list[str], headers: dict[str, str], body: bytes
    ) -> None:
        assert self.deliveries is not None
        try:
            status, content, extra = await self.deliveries.admit(parts, headers, body)
        except Exception:  # as uvicorn answers an ASGI app's exception
            log.exception("Exception in ASGI application")
            status, content, extra = 500, _INTERNAL_ERROR, {}
        if cycle.disconnected or self.transport.is_closing():
            cycle.response_complete = True
            return
        payload = orjson.dumps(content)
        head = [_status_line(status)]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        for key, text in extra.items():
            head += [key.lower().encode("latin-1"), b": ", text.encode("latin-1"), b"\r\n"]
        head.append(b"content-length: %d\r\ncontent-type: application/json\r\n" % len(payload))
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += [b"\r\n", payload]
        self.transport.write(b"".join(head))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """What the parser refuses (a malformed request line, conflicting lengths, TLS
        spoken to plain HTTP) gets the service's one error shape, as JSON."""
        body = orjson.dumps({"error": "bad_request", "detail": msg})
        self._answer_and_close(400, b"Bad Request", body)

    def _body_timed_out(self) -> None:
        assert self.deliveries is not None
        self._header_timer = None
        self._fast = None
        timeout = self.deliveries.limits.body_timeout_seconds
        self._answer_and_close(
            408,
            b"Request Timeout",
            orjson.dumps(
                {"error": "request_timeout", "detail": webhooks.body_timeout_detail(timeout)}
            ),
        )

    def _stop_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, reason: bytes) -> None:
        self._stop_timer()
        body = b'{"error":"%s","detail":"%s"}' % (
            b"request_timeout" if status == 408 else b"headers_too_large",
            reason,
        )
        self._answer_and_close(status, reason, body)

    def _answer_and_close(self, status: int, reason: bytes, body: bytes) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


@functools.cache
def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())


def protocol(
    header_timeout: float,
    max_header_bytes: int,
    deliveries: webhooks.WebhookEndpoint | None = None,
) -> Any:
    """A protocol class for ``uvicorn.run(http=...)`` with these bounds; with
    ``deliveries``, plain webhook deliveries take the fast path to it."""
    return type(
        "DD0CHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": header_timeout,
            "max_header_bytes": max_header_bytes,
            "deliveries": deliveries,
        },
    )

"""uvicorn's httptools protocol, with what it lacks against slow or huge requests.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) but not a
connection that never sends a byte, nor one that trickles its headers, and httptools
has no header size cap (``h11_max_incomplete_event_size`` is h11's alone). Here each
request's line and headers must arrive within ``header_timeout`` seconds (from the
connection, or from the request's first byte on a kept-alive one) and within
``max_header_bytes``; else the connection is answered 408 / 431 and closed.

It also sends each response in one write: uvicorn writes the status line and headers,
then the body, and with ``TCP_NODELAY`` each write is its own system call and packet
(a quarter of a webhook's CPU in ``serve``'s profile went to the two).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._header_bytes = 0
        self._in_headers = True
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._refuse, 408, b"Request Timeout"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Still in the headers after parsing all of it: everything so far was headers.
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(431, b"Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._in_headers = True
            self._header_bytes = 0
            self._stop_timer()
            self._header_timer = self.loop.call_later(
                self.header_timeout, self._refuse, 408, b"Request Timeout"
            )

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_timer()
        super().on_headers_complete()

    def _stop_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, reason: bytes) -> None:
        self._stop_timer()
        if self.transport.is_closing():
            return
        body = b'{"error":"%s","detail":"%s"}' % (
            b"request_timeout" if status == 408 else b"headers_too_large",
            reason,
        )
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


def protocol(header_timeout: float, max_header_bytes: int) -> Any:
    """A protocol class for ``uvicorn.run(http=...)`` with these bounds."""
    return type(
        "DD0CHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )

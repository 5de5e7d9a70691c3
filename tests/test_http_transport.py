"""A response's writes leave in one send (``web.http_server.CoalescingTransport``)."""

from __future__ import annotations

import asyncio
from typing import Any

from dd0c_alert.web.http_server import CoalescingTransport


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_turn_leave_together_and_in_order() -> None:
    async def scenario() -> list[bytes]:
        inner = Recording()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
        transport.write(b'{"status":"accepted"}')
        assert inner.sent == []  # nothing before the turn ends
        await asyncio.sleep(0)
        transport.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
        await asyncio.sleep(0)
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
        return inner.sent

    assert asyncio.run(scenario()) == [
        b'HTTP/1.1 202 Accepted\r\n\r\n{"status":"accepted"}',
        b"HTTP/1.1 202 Accepted\r\n\r\n",
    ]


def test_close_sends_what_is_pending_first() -> None:
    async def scenario() -> Recording:
        inner = Recording()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        transport.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        return inner

    inner = asyncio.run(scenario())
    assert inner.sent == [b"HTTP/1.1 408 Request Timeout\r\n\r\n"]
    assert inner.closed

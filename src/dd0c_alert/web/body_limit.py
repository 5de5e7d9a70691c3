"""A cap on the request body of every REST endpoint, before FastAPI reads it.

A declared ``Content-Length`` over the cap is refused without reading a byte; a
chunked body is read up to the cap and refused the moment it passes it. What is under
the cap is handed on unchanged (REST bodies are read whole anyway).

uvicorn bounds the time to send headers (``http_server``) but not the body: a client
could trickle one byte a minute and hold the connection for ever. The whole body must
therefore arrive within ``timeout`` seconds of the first ``receive()`` (each one waits
at most what is left), else 408 and the connection is closed. A deadline for the whole
body, not per chunk: a per-chunk timeout still lets a byte every few seconds through.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            try:
                left = deadline - asyncio.get_running_loop().time()
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                await self._too_slow(scope, receive, send)
                return
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "body_too_large",
            f"request body exceeds {self.max_bytes} bytes (setting DD0C_API_MAX_BODY_BYTES)",
            {"Connection": "close"},
        )
        await response(scope, receive, send)

    async def _too_slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            408,
            "request_timeout",
            f"the request body took over {self.timeout:g} s to arrive "
            "(setting DD0C_HTTP_BODY_TIMEOUT_SECONDS)",
            {"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(chunks: list[bytes], pending: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body in one message, then the rest."""
    body: Message | None = (
        {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        if pending is None
        else pending
    )

    async def replayed() -> Message:
        nonlocal body
        if body is not None:
            message, body = body, None
            return message
        return await receive()

    return replayed

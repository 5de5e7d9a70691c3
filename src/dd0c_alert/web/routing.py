"""The route class of every REST router: request bodies are parsed by orjson.

orjson refuses what the standard library lets through and what then fails deep
inside (a 500): lone surrogates (``"\\ud800"``), which no database driver can encode,
and ``NaN``/``Infinity``, which are not JSON. Its ``JSONDecodeError`` is the standard
library's, so FastAPI answers it as any malformed body: 422 with the parser's message.

NUL characters are refused the same way, in a body's strings and in the path and query:
PostgreSQL text cannot hold them, so every field that reaches a query failed there with
a 500, while SQLite stored them. Refused alike on either store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from .responses import error_response


class _OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if "surrogate" not in exc.msg:
                    raise
                raise json.JSONDecodeError(
                    f"{exc.msg}: a lone UTF-16 surrogate such as \\ud800 is not text",
                    exc.doc,
                    exc.pos,
                ) from None
            if _holds_nul(self._json):
                raise json.JSONDecodeError(NUL_REFUSED, body.decode("utf-8", "replace"), 0)
        return self._json


NUL_REFUSED = "text may not contain a NUL character (\\u0000)"


def _holds_nul(document: Any) -> bool:
    """Whether a string anywhere in a parsed JSON document (keys too) holds a NUL; no
    recursion, since orjson accepts nesting deeper than Python's recursion limit."""
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            pending.extend(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def address_holds_nul(request: Request) -> bool:
    """A NUL in the path or the query (``%00``): refused before any handler runs."""
    return "\x00" in request.scope["path"] or any(
        "\x00" in key or "\x00" in value for key, value in request.query_params.multi_items()
    )


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if address_holds_nul(request):
                return error_response(422, "invalid_request", NUL_REFUSED)
            return await handler(_OrjsonRequest(request.scope, request.receive))

        return route

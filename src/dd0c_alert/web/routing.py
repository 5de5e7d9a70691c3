"""The route class of every REST router: request bodies are parsed by orjson.

orjson refuses what the standard library lets through and what then fails deep
inside (a 500): lone surrogates (``"\\ud800"``), which no database driver can encode,
and ``NaN``/``Infinity``, which are not JSON. Its ``JSONDecodeError`` is the standard
library's, so FastAPI answers it as any malformed body: 422 with the parser's message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


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
        return self._json


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_OrjsonRequest(request.scope, request.receive))

        return route

"""Configuration pages act through the REST endpoints' own functions, so a form does
exactly what the API does: the same validation, the same permission (read from the
endpoint's ``require`` dependency, not restated here), the same audit entry.

An endpoint answers a dict, a ``Response`` (a JSON body, or an ``error_response``),
or raises ``HTTPException``; :func:`call` turns all three into one :class:`Answer`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, get_args

import orjson
from fastapi import HTTPException, Request, Response
from pydantic import ValidationError

from ..permissions import Principal, allowed, operation_of
from .guard import acting, viewer
from .session import Form

Endpoint = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Answer:
    status: int
    value: Any = None
    error: str = ""
    code: str = ""

    @property
    def ok(self) -> bool:
        return self.status < 400


@cache
def _principal_parameter(endpoint: Endpoint) -> tuple[str, str]:
    """The name of the endpoint's ``Principal`` parameter and the operation its
    ``require`` dependency checks."""
    for name, parameter in inspect.signature(endpoint, eval_str=True).parameters.items():
        for extra in get_args(parameter.annotation)[1:]:
            operation = operation_of(getattr(extra, "dependency", None))
            if operation is not None:
                return name, operation
    raise TypeError(f"{endpoint.__qualname__} declares no require(...) dependency")


def operation(endpoint: Endpoint) -> str:
    return _principal_parameter(endpoint)[1]


async def reading(request: Request, endpoint: Endpoint) -> Principal:
    """The signed-in viewer of a page showing what ``endpoint`` returns: 403 when the
    permission table does not let them read it."""
    me = await viewer(request)
    if not allowed(operation(endpoint), me):
        raise HTTPException(403, f"your role may not see this ({operation(endpoint)})")
    return me


async def posting(request: Request, endpoint: Endpoint) -> tuple[Principal, Form]:
    """A form that will call ``endpoint``: CSRF, session and permission checked."""
    return await acting(request, operation(endpoint))


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors by form field (the first location part), for display next
    to each field."""
    found: dict[str, str] = {}
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        found.setdefault(where, message)
    return found


async def call(endpoint: Endpoint, request: Request, principal: Principal, **args: Any) -> Answer:
    name, _ = _principal_parameter(endpoint)
    try:
        result = await endpoint(request, **{name: principal}, **args)
    except HTTPException as exc:
        return Answer(exc.status_code, error=str(exc.detail))
    if not isinstance(result, Response):
        return Answer(200, result)
    body = orjson.loads(bytes(result.body)) if result.body else None
    if result.status_code >= 400:
        detail = body if isinstance(body, dict) else {}
        message = str(detail.get("detail", "refused"))
        return Answer(result.status_code, error=message, code=str(detail.get("error", "")))
    return Answer(result.status_code, body)


def trial_outcome(answer: Answer) -> dict[str, Any]:
    """A test's answer as ``_test_results.html`` shows it: the results, or why none
    (a 429 says when to try again)."""
    if answer.ok:
        return {"items": answer.value["items"], "error": ""}
    return {"items": [], "error": answer.error}

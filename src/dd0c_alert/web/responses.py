"""JSON responses rendered with orjson, and the one error shape every endpoint uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import Response

from .types import INVALID_TIME

#: The ``error`` code of an HTTP error raised without one of its own.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def _printable(value: Any) -> Any:
    """``value`` with every string made encodable (a lone surrogate becomes U+FFFD)."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, Mapping):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    try:
        body = orjson.dumps(content)
    except orjson.JSONEncodeError:  # text that is not valid UTF-8: never a 500 for it
        body = orjson.dumps(_printable(content), default=str)
    return Response(
        body,
        status_code=status_code,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def error_response(
    status_code: int, reason: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"error": <reason code>, "detail": <human text>}``: codes are stable for scripts."""
    return json_response({"error": reason, "detail": detail}, status_code, headers)


def validation_error_response(errors: Sequence[Any]) -> Response:
    """422 for a request that did not validate: ``invalid_time`` when a time was the
    problem, else ``invalid_request``; ``detail`` sums the errors up in words, and
    ``errors`` lists them (location, message, type) for programs."""
    listed = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid" and err.get("ctx", {}).get("error"):
            message = f"{message}: {err['ctx']['error']}"
        listed.append({"loc": loc, "msg": message, "type": str(err.get("type", ""))})
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in listed) or "invalid request"
    reason = INVALID_TIME if any(e["type"] == INVALID_TIME for e in listed) else "invalid_request"
    return json_response({"error": reason, "detail": detail, "errors": listed}, 422)

"""JSON responses rendered with orjson, and the one error shape every endpoint uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import Response


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def error_response(
    status_code: int, reason: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """``{"error": <reason code>, "detail": <human text>}``: codes are stable for scripts."""
    return json_response({"error": reason, "detail": detail}, status_code, headers)

"""The errors every REST operation can answer, written into its OpenAPI description.

FastAPI documents only what a route declares: its success and the 422 of its
parameters. The errors raised by shared machinery (authentication, the permission
table, a path id that names nothing, a list cursor this API did not hand out, the body
cap) were answered but not documented, so a client generated from the schema, or a
contract test, met statuses the schema said could not happen. They follow from the
operation's shape, so they are added here from that shape, once, for every operation;
what a route declares itself is kept.
"""

from __future__ import annotations

from typing import Any

#: ``{"error": <code>, "detail": <text>}``: the shape of every error (``responses``).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "title": "Error", "description": "A stable code."},
        "detail": {"type": "string", "title": "Detail", "description": "Why, in words."},
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_UNAUTHORIZED = "`unauthorized`: no credentials, or an invalid, expired or revoked key or session."
_FORBIDDEN = (
    "`forbidden`: the key's scope or the member's role does not allow this operation, "
    "or a cookie-authenticated change lacks its CSRF token."
)
_NOT_FOUND = "`not_found`: nothing with this id in the caller's tenant."
_BAD_CURSOR = "`bad_request`: the cursor is not one this list handed out."
_TOO_SLOW = "`request_timeout`: the body took over `DD0C_HTTP_BODY_TIMEOUT_SECONDS` to arrive."
_TOO_LARGE = "`body_too_large`: the body is over `DD0C_API_MAX_BODY_BYTES`."


def _implied(operation: dict[str, Any]) -> dict[str, str]:
    """Status -> description of the errors the operation's shape implies."""
    implied: dict[str, str] = {}
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
        implied["400"] = _BAD_CURSOR
    if operation.get("security"):
        implied["401"] = _UNAUTHORIZED
        implied["403"] = _FORBIDDEN
    if any(p.get("in") == "path" for p in parameters):
        implied["404"] = _NOT_FOUND
    if "requestBody" in operation:
        implied["408"] = _TOO_SLOW
        implied["413"] = _TOO_LARGE
    return implied


def _with_error_body(response: dict[str, Any]) -> None:
    """An error documented by description only gets the error shape as its body."""
    response.setdefault("content", {"application/json": {"schema": _ERROR_REF}})


def document_errors(schema: dict[str, Any], skip_prefix: str) -> None:
    """Add, in place, each operation's implied errors (those it does not declare) and
    the error shape to every 4xx/5xx it declares without a body; paths under
    ``skip_prefix`` (the webhooks, documented by hand) are left alone."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        if path.startswith(skip_prefix):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in _implied(operation).items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45" and status != "422":
                    _with_error_body(response)

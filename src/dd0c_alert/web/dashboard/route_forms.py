"""A notification route as an HTML form and back, so the routes page works without
JavaScript: destinations are written one per line (``slack #oncall``,
``email a@example.com, b@example.com``, ``webhook https://…``). The document built
here goes to the routes API, whose parser decides what is valid; its message is
shown next to the field it names (:func:`field_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .session import Form, field

MAX_LINES = 50
KINDS = ("slack", "email", "webhook")


def _lines(destinations: Any) -> str:
    lines = []
    for dest in destinations if isinstance(destinations, list) else ():
        kind = dest.get("type")
        if kind == "slack":
            lines.append(f"slack {dest.get('channel', '')}")
        elif kind == "email":
            to = dest.get("to", [])
            lines.append("email " + ", ".join(to if isinstance(to, list) else [str(to)]))
        elif kind == "webhook":
            lines.append(f"webhook {dest.get('url', '')}")
    return "\n".join(lines)


def form_of(route: Mapping[str, Any]) -> dict[str, str]:
    """The form's values for a stored route (as the API shows it: no secret)."""
    escalation = route.get("escalation") or {}
    after = escalation.get("after_seconds")
    return {
        "name": str(route.get("name", "")),
        "matchers": str(route.get("matchers", "")),
        "min_severity": str(route.get("min_severity") or ""),
        "continue": "on" if route.get("continue") else "",
        "quiet_hours": str(route.get("quiet_hours") or ""),
        "destinations": _lines(route.get("destinations")),
        "escalate_after_minutes": f"{after / 60:g}" if isinstance(after, int) else "",
        "escalation_destinations": _lines(escalation.get("destinations")),
    }


def _destinations(text: str, secret: str, where: str) -> list[dict[str, Any]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_LINES:
        raise ValueError(f"{where}: at most {MAX_LINES} lines")
    out: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if kind == "slack":
            out.append({"type": "slack", "channel": rest})
        elif kind == "email":
            out.append({"type": "email", "to": [a.strip() for a in rest.split(",") if a.strip()]})
        elif kind == "webhook":
            out.append({"type": "webhook", "url": rest} | ({"secret": secret} if secret else {}))
        else:
            raise ValueError(f"{where}: line {number} starts with slack, email or webhook")
    return out


def document_of(form: Form) -> tuple[dict[str, Any], dict[str, str]]:
    """The route document the form describes, or the errors by field of what could
    not even be put in one (the API checks the rest)."""
    errors: dict[str, str] = {}
    secret = field(form, "webhook_secret")
    document: dict[str, Any] = {
        "name": field(form, "name"),
        "matchers": field(form, "matchers"),
        "min_severity": field(form, "min_severity") or None,
        "continue": form.get("continue") == "on",
        "quiet_hours": field(form, "quiet_hours") or None,
    }
    try:
        document["destinations"] = _destinations(form.get("destinations", ""), secret, "lines")
    except ValueError as exc:
        errors["destinations"] = str(exc)
    after = field(form, "escalate_after_minutes")
    later = form.get("escalation_destinations", "")
    document["escalation"] = None
    if after or later.strip():
        try:
            minutes = float(after)
        except ValueError:
            errors["escalate_after_minutes"] = "enter the minutes before escalating, e.g. 15"
            minutes = 0.0
        try:
            escalation = _destinations(later, secret, "lines")
            document["escalation"] = {
                "after_seconds": round(minutes * 60),
                "destinations": escalation,
            }
        except ValueError as exc:
            errors["escalation_destinations"] = str(exc)
    return document, errors


def field_of(message: str) -> str:
    """The form field a message of the route parser is about (``form`` if none)."""
    text = message.lower()
    if "'secret'" in text:
        return "webhook_secret"
    if "escalation 'after_seconds'" in text:
        return "escalate_after_minutes"
    if ", escalation" in text or "'escalation'" in text:
        return "escalation_destinations"
    for needle, name in (
        ("'name'", "name"),
        ("matchers:", "matchers"),
        ("quiet_hours:", "quiet_hours"),
        ("'min_severity'", "min_severity"),
        ("'continue'", "continue"),
        ("destination", "destinations"),
    ):
        if needle in text:
            return name
    return "form"

"""Notification routes as the API takes and shows them, between the caller and the
outbox.

A route is stored as the JSON document the tenant wrote (so it reads back the way it
was written), but only after :func:`dd0c_alert.notify.routing.parse_route` accepted it
and with only the keys the router reads: a stored route that the notifier could not
parse would silently notify nobody. Webhook secrets are write-only: the outbox keeps
them encrypted (``secret_encrypted``), :func:`shown` replaces them with
``"secret_set": true``, and a change that does not repeat a webhook's secret keeps the
one stored for the same URL, so reading a route, editing it and writing it back never
needs the secret again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dd0c_alert.notify.routing import parse_route

#: Top-level keys of a route document, as documented for ``POST /v1/routes``.
ROUTE_KEYS = (
    "name",
    "matchers",
    "min_severity",
    "continue",
    "quiet_hours",
    "destinations",
    "escalation",
)
_DESTINATION_KEYS = {
    "slack": ("type", "channel"),
    "email": ("type", "to"),
    "webhook": ("type", "url", "secret"),
}
#: Characters of ``quiet_hours``, as of a silence's schedule and the dashboard's field:
#: each window is read for every incident the route might take, so a megabyte of
#: windows would slow every tenant's notifier.
MAX_QUIET_HOURS_CHARS = 200
#: What :func:`shown` puts where a secret was; ignored on the way back in.
SECRET_MARKER = "secret_set"  # noqa: S105 - a key name, not a secret


def _clean_destinations(value: Any, known: Mapping[str, str]) -> Any:
    """Each destination reduced to its type's keys; a webhook without a ``secret``
    gets the one ``known`` for its URL. Anything malformed is left for
    ``parse_route`` to name."""
    if not isinstance(value, list):
        return value
    cleaned: list[Any] = []
    for item in value:
        if not isinstance(item, Mapping) or item.get("type") not in _DESTINATION_KEYS:
            cleaned.append(item)
            continue
        dest = {k: item[k] for k in _DESTINATION_KEYS[str(item["type"])] if k in item}
        if dest["type"] == "webhook" and "secret" not in dest:
            url = dest.get("url")
            if isinstance(url, str) and url in known:
                dest["secret"] = known[url]
        cleaned.append(dest)
    return cleaned


def _secrets_by_url(route: Mapping[str, Any] | None) -> dict[str, str]:
    """``url -> secret`` of a revealed route's webhooks (main and escalation)."""
    if route is None:
        return {}
    found: dict[str, str] = {}
    escalation = route.get("escalation")
    lists = [route.get("destinations")]
    if isinstance(escalation, Mapping):
        lists.append(escalation.get("destinations"))
    for destinations in lists:
        for dest in destinations if isinstance(destinations, list) else ():
            if (
                isinstance(dest, Mapping)
                and dest.get("type") == "webhook"
                and isinstance(dest.get("url"), str)
                and isinstance(dest.get("secret"), str)
            ):
                found[dest["url"]] = dest["secret"]
    return found


def prepare(given: Any, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document to store for ``given`` (a whole route, or for a change the stored
    route with the given keys merged on top), validated; ``ValueError`` saying what is
    wrong. ``previous`` is the stored route with its secrets revealed, when changing one."""
    if not isinstance(given, Mapping):
        raise ValueError("a route must be a JSON object")
    unknown = sorted(set(given) - set(ROUTE_KEYS) - {"id"})
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(unknown)} (known: {', '.join(ROUTE_KEYS)})")
    merged: dict[str, Any] = {
        k: v for k, v in (previous or {}).items() if k in ROUTE_KEYS and k not in given
    }
    merged.update({k: v for k, v in given.items() if k in ROUTE_KEYS})
    known = _secrets_by_url(previous)
    merged["destinations"] = _clean_destinations(merged.get("destinations", []), known)
    escalation = merged.get("escalation")
    if isinstance(escalation, Mapping):
        merged["escalation"] = {
            "after_seconds": escalation.get("after_seconds"),
            "destinations": _clean_destinations(escalation.get("destinations"), known),
        }
    document = {k: v for k, v in merged.items() if v is not None}
    quiet = document.get("quiet_hours")
    if isinstance(quiet, str) and len(quiet) > MAX_QUIET_HOURS_CHARS:
        raise ValueError(
            f"'quiet_hours' is {len(quiet)} characters: the limit is {MAX_QUIET_HOURS_CHARS}"
        )
    parse_route(document)
    return document


def _hide(destinations: Any) -> Any:
    if not isinstance(destinations, list):
        return destinations
    out: list[Any] = []
    for dest in destinations:
        if isinstance(dest, Mapping) and dest.get("type") == "webhook":
            visible = {k: v for k, v in dest.items() if k not in ("secret", "secret_encrypted")}
            visible[SECRET_MARKER] = "secret" in dest or "secret_encrypted" in dest
            out.append(visible)
        else:
            out.append(dest)
    return out


def shown(route: Mapping[str, Any]) -> dict[str, Any]:
    """A stored route as the API shows it: never a webhook secret, encrypted or not."""
    visible = dict(route)
    visible["destinations"] = _hide(visible.get("destinations", []))
    escalation = visible.get("escalation")
    if isinstance(escalation, Mapping):
        visible["escalation"] = {
            **escalation,
            "destinations": _hide(escalation.get("destinations")),
        }
    return visible


def name_taken(
    document: Mapping[str, Any], routes: Sequence[Mapping[str, Any]], route_id: str | None = None
) -> str | None:
    """Why ``document`` may not be stored beside the tenant's other ``routes`` (all
    but ``route_id``, the one it replaces), or ``None``. A route's name identifies it
    in deliveries and in the escalation it schedules, so two routes of one name made
    the second's escalation look up the first (without one: nobody was escalated to)."""
    name = str(document.get("name", "")).strip()
    for route in routes:
        if route.get("id") != route_id and str(route.get("name", "")).strip() == name:
            return f"a route named {name!r} exists already: route names must be unique"
    return None


def free_name(base: str, routes: Sequence[Mapping[str, Any]]) -> str:
    """``base``, or ``base 2``, ``base 3``…: the first no route of the tenant has, for
    routes made on the user's behalf (the set-up guide's mail route)."""
    names = {str(route.get("name", "")).strip() for route in routes}
    candidate, n = base, 1
    while candidate in names:
        n += 1
        candidate = f"{base} {n}"
    return candidate


def find(routes: Sequence[Mapping[str, Any]], route_id: str) -> dict[str, Any] | None:
    """The route with this id, from a tenant's list; ``None`` when it has none such."""
    for route in routes:
        if route.get("id") == route_id:
            return dict(route)
    return None

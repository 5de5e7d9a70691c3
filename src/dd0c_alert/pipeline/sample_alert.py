"""A realistic sample delivery of a provider, signed with an integration's secret the
way that tool signs, for ``POST /v1/integrations/{id}/test``: it goes through the real
admission path (``IngestService.receive``) like any webhook."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson

from dd0c_alert.storage.ports import Integration

#: Tools that prove the secret with a plain bearer token.
_BEARER = frozenset({"alertmanager", "datadog", "opsgenie", "argocd"})


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sample_body(provider: str, secret: str, now: float | None = None) -> bytes:
    """The provider's sample, its times moved so that the latest is ``now``: a test
    alert dated in its recording's year opened an incident that every "opened in the
    last …" filter hid."""
    body = resources.files("dd0c_alert.samples").joinpath(f"{provider}.json").read_bytes()
    document: Any = orjson.loads(body)
    if provider == "pagerduty-events":  # the routing key in the body is the proof
        document["routing_key"] = secret
    times = list(_times(document))
    if times:
        shift = (time.time() if now is None else now) - max(moment for _, _, moment in times)
        for parent, key, moment in times:
            parent[key] = _moved(parent[key], moment + shift)
    return orjson.dumps(document)


#: GitLab's spelling of times in its webhooks.
_GITLAB_TIME = "%Y-%m-%d %H:%M:%S %z"


def _is_time_key(key: Any) -> bool:
    return isinstance(key, str) and (
        key.endswith(("At", "_at")) or key in ("date", "last_updated", "timestamp")
    )


def _times(node: Any) -> Iterator[tuple[Any, Any, float]]:
    """(container, key, seconds since the epoch) of each time in a sample: ISO texts
    and epoch seconds or milliseconds under time-like keys; Go's zero time (year 1,
    "not ended") is left alone."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        if isinstance(value, dict | list):
            yield from _times(value)
        elif _is_time_key(key) and (moment := _seconds(value)) is not None:
            yield node, key, moment


def _seconds(value: Any) -> float | None:
    if isinstance(value, str) and value[:2] in ("19", "20") and "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if isinstance(value, str) and value[:2] in ("19", "20") and " " in value:
        return datetime.strptime(value, _GITLAB_TIME).timestamp()
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value / _unit(value)


def _unit(number: int) -> int:
    """Per second: epoch seconds, milliseconds (Datadog) or nanoseconds (OpsGenie's
    ``updatedAt``), told apart by size."""
    return (
        10**9 if number > 10**17 else 10**6 if number > 10**14 else 1000 if number > 10**11 else 1
    )


def _moved(value: Any, seconds: float) -> Any:
    """``seconds`` in ``value``'s own spelling (ISO text, an epoch number or its text)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str) and "T" in value:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, str) and " " in value:
        return moment.strftime(_GITLAB_TIME)
    moved = int(seconds * _unit(int(value)))
    return str(moved) if isinstance(value, str) else moved


def sample_delivery(
    integration: Integration, now: float | None = None
) -> tuple[dict[str, str], bytes]:
    """Lower-case headers and body of one signed sample delivery."""
    provider, secret = integration.provider, integration.secret
    body = sample_body(provider, secret, now)
    stamp = str(int(time.time() if now is None else now))
    headers = {"content-type": "application/json", "user-agent": "dd0c-alert-test"}
    if provider in _BEARER:
        headers["authorization"] = f"Bearer {secret}"
    elif provider == "grafana":
        headers["x-grafana-alerting-timestamp"] = stamp
        headers["x-grafana-alerting-signature"] = _hex(secret, stamp.encode() + b":" + body)
    elif provider == "pagerduty":
        headers["x-pagerduty-signature"] = "v1=" + _hex(secret, body)
    elif provider == "github":
        headers["x-hub-signature-256"] = "sha256=" + _hex(secret, body)
        headers["x-github-event"] = "deployment_status"
    elif provider == "gitlab":
        headers["x-gitlab-token"] = secret
        headers["x-gitlab-event"] = "Deployment Hook"
    elif provider == "custom":
        headers["x-dd0c-timestamp"] = stamp
        headers["x-dd0c-signature"] = "v1=" + _hex(secret, stamp.encode() + b"." + body)
    return headers, body

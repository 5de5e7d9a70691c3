"""A realistic sample delivery of a provider, signed with an integration's secret the
way that tool signs, for ``POST /v1/integrations/{id}/test``: it goes through the real
admission path (``IngestService.receive``) like any webhook."""

from __future__ import annotations

import hashlib
import hmac
import time
from importlib import resources
from typing import Any

import orjson

from dd0c_alert.storage.ports import Integration

#: Tools that prove the secret with a plain bearer token.
_BEARER = frozenset({"alertmanager", "datadog", "opsgenie", "argocd"})


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sample_body(provider: str, secret: str) -> bytes:
    body = resources.files("dd0c_alert.samples").joinpath(f"{provider}.json").read_bytes()
    if provider == "pagerduty-events":  # the routing key in the body is the proof
        document: Any = orjson.loads(body)
        document["routing_key"] = secret
        body = orjson.dumps(document)
    return body


def sample_delivery(
    integration: Integration, now: float | None = None
) -> tuple[dict[str, str], bytes]:
    """Lower-case headers and body of one signed sample delivery."""
    provider, secret = integration.provider, integration.secret
    body = sample_body(provider, secret)
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

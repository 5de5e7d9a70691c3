"""Grafana unified alerting webhook contact point.

Body: Alertmanager's webhook notification plus Grafana's fields (``orgId``, ``state``,
``title``, ``message``; per alert ``values``, ``valueString``, ``dashboardURL``,
``panelURL``, ``silenceURL``, ``imageURL``). Where the shapes coincide the alert is read
by ``alertmanager.to_alert``, so status, title, service / environment / resource label
priority, fingerprint (Grafana's own ``fingerprint`` of the label set, else a hash of
all labels) and the ``dd0c_truncated_alerts`` label work exactly as there. ``values``
and ``valueString`` change at every evaluation and are never part of identity.

A rule that gets no data or a query error (and is set to alert on it) fires a separate
alert named ``DatasourceNoData`` or ``DatasourceError``, the rule's title in label
``rulename``: its title is "No data: <rule>" or "Query failed: <rule>", whatever the
rule's summary says (it describes the condition, which was not evaluated). Without a
``rulename`` the alert name stays the title. ``valueString`` (the values the rule saw,
``[ var='B' value=93.2 ]``) is added to the description as "Values: …".

The contact point's "Test" button sends an ordinary firing alert (``TestAlert``);
it is normalised like any other so the user sees the integration work. Bodies of the
legacy (pre-unified, removed in Grafana 11) alerting are rejected with a clear message.

Severity: the ``severity`` (else ``priority``) label through ``SEVERITIES``, the same
table as ``alertmanager``; unknown or missing → medium.

Links: as ``alertmanager`` (``source`` = ``generatorURL``, ``runbook``, ``silence``),
plus ``dashboard`` = ``dashboardURL`` (over a dashboard annotation), ``panel`` =
``panelURL`` and ``image`` = ``imageURL``; relative URLs resolve against ``externalURL``.

Auth: with HMAC on, ``X-Grafana-Alerting-Signature`` = hex HMAC-SHA256 of
``timestamp + ":" + body`` when ``X-Grafana-Alerting-Timestamp`` is sent (and must be
within 300 s), else of the body. Without the signature header, the contact point's
bearer token or basic auth (or ``X-DD0C-Token``) is checked instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dd0c_alert.domain.models import CanonicalAlert, Normalised, Severity

from . import alertmanager, parse
from .auth import any_signature_matches, check_timestamp, hmac_sha256_hex, verify_token
from .base import AuthError, Delivery, PayloadError

NAME = "grafana"
DELIVERY_ID_HEADERS: tuple[str, ...] = ()

SIGNATURE_HEADER = "x-grafana-alerting-signature"
TIMESTAMP_HEADER = "x-grafana-alerting-timestamp"

SEVERITIES: dict[str, Severity] = alertmanager.SEVERITIES

_LEGACY_KEYS = ("evalMatches", "ruleId", "ruleUrl")
#: Grafana's alert names for a rule that could not be evaluated, with their titles.
_NOT_EVALUATED = {"DatasourceNoData": "No data", "DatasourceError": "Query failed"}


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    signature = headers.get(SIGNATURE_HEADER, "").strip()
    if not signature:
        verify_token(headers, secret)
        return
    stamp = headers.get(TIMESTAMP_HEADER, "").strip()
    if stamp:
        check_timestamp(stamp, now)
        message = stamp.encode() + b":" + body
    else:
        message = body
    if not any_signature_matches(hmac_sha256_hex(secret, message), [signature]):
        raise AuthError("signature_mismatch", "X-Grafana-Alerting-Signature does not match")


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    if (
        isinstance(payload, Mapping)
        and "alerts" not in payload
        and any(key in payload for key in _LEGACY_KEYS)
    ):
        raise PayloadError(
            "legacy Grafana alerting notification (ruleId / evalMatches) is not supported: "
            "send from a unified alerting webhook contact point"
        )
    group, objects = alertmanager.read_group(payload, "a Grafana alerting webhook")

    def read(index: int, item: Any) -> Normalised:
        obj = parse.mapping(item, "the alert")
        alert = alertmanager.to_alert(obj, group, delivery, NAME, SEVERITIES)
        for kind, field in (
            ("dashboard", "dashboardURL"),
            ("panel", "panelURL"),
            ("image", "imageURL"),
        ):
            if url := alertmanager.link(obj.get(field), group.external_url):
                alert.links[kind] = url
        _explain(alert, obj)
        return alert

    return parse.each(objects, read, delivery, alertmanager.alert_name)


def _explain(alert: CanonicalAlert, obj: Mapping[str, Any]) -> None:
    """Say which rule could not be evaluated, and what the rule saw: a page titled
    "DatasourceNoData", or one without the value that crossed the threshold, sent the
    responder to Grafana to find out what fired."""
    state = _NOT_EVALUATED.get(alert.labels.get("alertname", ""))
    rule = alert.labels.get("rulename", "").strip()
    if state and rule:
        alert.title = f"{state}: {rule}"[:1024]
    values = parse.text(obj.get("valueString"), 4096)
    if values:
        alert.description = "\n\n".join(
            part for part in (alert.description, f"Values: {values}") if part
        )

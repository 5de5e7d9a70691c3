"""The custom provider end to end: signed webhook in, canonical alert out."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

from conftest import TenantHandle, drain


def sign(secret: str, body: bytes, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-DD0C-Timestamp": stamp, "X-DD0C-Signature": f"v1={digest}"}


def test_signed_alert_is_stored_and_listed(client, tenant: TenantHandle) -> None:
    tenant.integration("custom", "s3cret")
    body = json.dumps({"title": "Disk full", "service": "db", "severity": "crit"}).encode()
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign("s3cret", body))
    assert response.status_code == 202
    drain(tenant.runtime)
    items = client.get("/v1/alerts", headers=tenant.auth).json()["items"]
    assert [(i["title"], i["severity"], i["service"]) for i in items] == [
        ("Disk full", "critical", "db")
    ]


def test_nul_characters_are_stored_without_them(client, tenant: TenantHandle) -> None:
    """PostgreSQL cannot hold NUL in text or JSONB; the alert is stored, cleaned, in
    both modes instead of failing into the dead-letter store on one of them."""
    tenant.integration("custom", "s3cret")
    body = json.dumps(
        {"title": "Disk\u0000 full", "service": "db", "labels": {"team\u0000": "dba\u0000"}}
    ).encode()
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign("s3cret", body))
    assert response.status_code == 202
    drain(tenant.runtime)
    [item] = client.get("/v1/alerts", headers=tenant.auth).json()["items"]
    assert (item["title"], item["labels"]) == ("Disk full", {"team": "dba"})


def test_event_times_from_the_future_become_the_time_of_receipt(
    client, tenant: TenantHandle
) -> None:
    """A bad clock or a placeholder (year 9999) would sort the alert first for ever and
    open its incident in that year; a few minutes of clock skew is believed."""
    tenant.integration("custom", "s3cret")
    soon = datetime.now(UTC) + timedelta(minutes=2)
    for title, started in (("placeholder", "9999-12-31T23:59:59Z"), ("skewed", soon.isoformat())):
        body = json.dumps({"title": title, "service": "db", "started_at": started}).encode()
        response = client.post(
            f"/v1/wh/{tenant.id}/custom", content=body, headers=sign("s3cret", body)
        )
        assert response.status_code == 202
    drain(tenant.runtime)
    items = client.get("/v1/alerts", headers=tenant.auth).json()["items"]
    started = {i["title"]: datetime.fromisoformat(i["started_at"]) for i in items}
    assert abs(started["placeholder"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert abs(started["skewed"] - soon) < timedelta(seconds=1)  # believed
    [incident] = client.get("/v1/incidents", headers=tenant.auth).json()["items"]
    assert datetime.fromisoformat(incident["opened_at"]).year == datetime.now(UTC).year

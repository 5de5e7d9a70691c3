"""What ingestion refuses, and how (design §5): every refusal has a status and a reason
code and leaves nothing behind; what is accepted but unreadable is dead-lettered; limits,
idempotency and the claim check behave as documented; the read API is tenant-scoped."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import TenantHandle, drain
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.providers import PROVIDERS
from webhook_helpers import (
    api_items,
    auth_headers,
    dead_letters,
    delivery_for,
    integration_secret,
    lower,
    new_tenant,
    normalise_locally,
    replayed_headers,
    running,
    seed,
    stored_records,
)

pytestmark = pytest.mark.both_modes

REGISTERED = sorted(PROVIDERS)
WITH_DELIVERY_IDS = sorted(name for name in REGISTERED if PROVIDERS[name].DELIVERY_ID_HEADERS)
EVENT_KIND_HEADERS = ("x-github-event", "x-gitlab-event")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, Any]]:
    with running(tmp_path_factory.mktemp("rejections")) as pair:
        yield pair


@pytest.fixture
def runtime(service: tuple[Runtime, Any]) -> Runtime:
    return service[0]


@pytest.fixture
def client(service: tuple[Runtime, Any]) -> Any:
    return service[1]


@pytest.fixture
def tenant(runtime: Runtime) -> TenantHandle:
    return new_tenant(runtime)


def assert_nothing_kept(runtime: Runtime, tenant: TenantHandle) -> None:
    """A refused delivery leaves no trace: not queued, not stored, not dead-lettered,
    not counted against the quota."""
    assert runtime.queue.depth().messages == 0
    time.sleep(0.05)  # give a (wrongly) woken worker the chance to show itself
    assert stored_records(runtime, tenant.id) == []
    assert dead_letters(runtime, tenant.id) == []
    assert runtime.queue.events_this_month(tenant.id) == 0


def assert_error(response: Any, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == reason, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def signed(provider: str, body: bytes, secret: str, recorded: dict[str, str]) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **replayed_headers(recorded, with_delivery_ids=False),
        **auth_headers(provider, body, secret, recorded),
    }


def custom_signature(secret: str, body: bytes, stamp: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-DD0C-Timestamp": stamp, "X-DD0C-Signature": f"v1={digest}"}


def grafana_signature(secret: str, body: bytes, stamp: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Grafana-Alerting-Timestamp": stamp, "X-Grafana-Alerting-Signature": digest}


CUSTOM_BODY = b'{"title": "Disk full", "service": "db", "severity": "critical"}'

# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize("provider", REGISTERED)
def test_missing_proof_is_401_missing_signature(
    runtime: Runtime, client: Any, tenant: TenantHandle, provider: str
) -> None:
    case = seed(provider)
    body = case.body
    if provider == "pagerduty-events":  # the routing key in the body is the proof
        document = json.loads(body)
        for event in document if isinstance(document, list) else [document]:
            event.pop("routing_key", None)
        body = json.dumps(document).encode()
    tenant.integration(provider, "the-secret")
    made = lower(auth_headers(provider, body, "the-secret", case.recorded))
    headers = {k: v for k, v in made.items() if k in EVENT_KIND_HEADERS}
    headers |= replayed_headers(case.recorded, with_delivery_ids=False)

    response = client.post(f"/v1/wh/{tenant.id}/{provider}", content=body, headers=headers)

    assert_error(response, 401, "missing_signature")
    assert_nothing_kept(runtime, tenant)


@pytest.mark.parametrize("provider", REGISTERED)
def test_wrong_secret_is_401_signature_mismatch(
    runtime: Runtime, client: Any, tenant: TenantHandle, provider: str
) -> None:
    case = seed(provider)
    good = integration_secret(provider, case.body, "the-right-secret")
    tenant.integration(provider, "an-other-secret" if provider == "pagerduty-events" else good)
    headers = signed(provider, case.body, "the-wrong-secret", case.recorded)

    response = client.post(f"/v1/wh/{tenant.id}/{provider}", content=case.body, headers=headers)

    assert_error(response, 401, "signature_mismatch")
    assert_nothing_kept(runtime, tenant)


SIGNING = [name for name in ("custom", "pagerduty", "github", "grafana") if name in PROVIDERS]


@pytest.mark.parametrize("provider", SIGNING)
def test_body_changed_after_signing_is_401_signature_mismatch(
    runtime: Runtime, client: Any, tenant: TenantHandle, provider: str
) -> None:
    case = seed(provider)
    tenant.integration(provider, "the-secret")
    recorded = dict(case.recorded)
    if provider == "grafana":  # sign with HMAC rather than the contact point's token
        recorded["X-Grafana-Alerting-Signature"] = "recorded"
    headers = signed(provider, case.body, "the-secret", recorded)
    tampered = case.body + b"\n"  # still valid JSON, but not the bytes that were signed

    response = client.post(f"/v1/wh/{tenant.id}/{provider}", content=tampered, headers=headers)

    assert_error(response, 401, "signature_mismatch")
    assert_nothing_kept(runtime, tenant)


@pytest.mark.parametrize("skew", [-301, -3600, 3600], ids=["just-expired", "old", "future"])
def test_custom_timestamp_out_of_window_is_401_timestamp_expired(
    runtime: Runtime, client: Any, tenant: TenantHandle, skew: int
) -> None:
    tenant.integration("custom", "s3cret")
    stamp = str(int(time.time()) + skew)
    headers = custom_signature("s3cret", CUSTOM_BODY, stamp)

    response = client.post(f"/v1/wh/{tenant.id}/custom", content=CUSTOM_BODY, headers=headers)

    assert_error(response, 401, "timestamp_expired")
    assert_nothing_kept(runtime, tenant)


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "soon", "1e400"])
def test_custom_timestamp_that_is_no_time_is_401_invalid_timestamp(
    runtime: Runtime, client: Any, tenant: TenantHandle, stamp: str
) -> None:
    """A correctly signed "nan" must not escape the replay window."""
    tenant.integration("custom", "s3cret")
    headers = custom_signature("s3cret", CUSTOM_BODY, stamp)

    response = client.post(f"/v1/wh/{tenant.id}/custom", content=CUSTOM_BODY, headers=headers)

    assert_error(response, 401, "invalid_timestamp")
    assert_nothing_kept(runtime, tenant)


@pytest.mark.skipif("grafana" not in PROVIDERS, reason="grafana is not registered")
@pytest.mark.parametrize("stamp", ["old", "nan"])
def test_grafana_signed_timestamp_out_of_window_or_no_time_is_401(
    runtime: Runtime, client: Any, tenant: TenantHandle, stamp: str
) -> None:
    body = seed("grafana").body
    tenant.integration("grafana", "g-secret")
    value = str(int(time.time()) - 400) if stamp == "old" else stamp
    headers = grafana_signature("g-secret", body, value)

    response = client.post(f"/v1/wh/{tenant.id}/grafana", content=body, headers=headers)

    assert_error(response, 401, "timestamp_expired" if stamp == "old" else "invalid_timestamp")
    assert_nothing_kept(runtime, tenant)


@pytest.mark.parametrize("provider", REGISTERED)
def test_tenant_without_such_integration_is_401_unknown_integration(
    runtime: Runtime, client: Any, tenant: TenantHandle, provider: str
) -> None:
    case = seed(provider)
    other = "custom" if provider != "custom" else "alertmanager"
    tenant.integration(other, "the-secret")  # an integration, but not of this provider
    headers = signed(provider, case.body, "the-secret", case.recorded)

    response = client.post(f"/v1/wh/{tenant.id}/{provider}", content=case.body, headers=headers)

    assert_error(response, 401, "unknown_integration")
    assert_nothing_kept(runtime, tenant)


def test_integration_id_in_path_selects_the_integration(
    runtime: Runtime, client: Any, tenant: TenantHandle
) -> None:
    first = tenant.integration("custom", "first-secret")
    second = tenant.integration("custom", "second-secret")
    other_tenant = new_tenant(runtime)
    foreign = other_tenant.integration("custom", "first-secret")
    headers = custom_signature("first-secret", CUSTOM_BODY, str(int(time.time())))
    url = f"/v1/wh/{tenant.id}/custom"

    # Another tenant's integration, an unknown id, or the wrong one of mine: refused.
    for wrong in (foreign, "01JZZZZZZZZZZZZZZZZZZZZZZZ", "nope"):
        assert_error(
            client.post(f"{url}/{wrong}", content=CUSTOM_BODY, headers=headers),
            401,
            "unknown_integration",
        )
    assert_error(
        client.post(f"{url}/{second}", content=CUSTOM_BODY, headers=headers),
        401,
        "signature_mismatch",
    )
    assert_nothing_kept(runtime, tenant)

    response = client.post(f"{url}/{first}", content=CUSTOM_BODY, headers=headers)
    assert response.status_code == 202, response.text
    drain(runtime)
    assert len(stored_records(runtime, tenant.id)) == 1


def test_unknown_provider_is_404(runtime: Runtime, client: Any, tenant: TenantHandle) -> None:
    tenant.integration("custom", "s3cret")
    headers = custom_signature("s3cret", CUSTOM_BODY, str(int(time.time())))

    response = client.post(f"/v1/wh/{tenant.id}/nagios", content=CUSTOM_BODY, headers=headers)

    assert_error(response, 404, "unknown_provider")
    assert_nothing_kept(runtime, tenant)


@pytest.mark.parametrize("tenant_id", ["01JZZZZZZZZZZZZZZZZZZZZZZZ", "x" * 300])
def test_unknown_tenant_is_answered_like_a_missing_integration(
    runtime: Runtime, client: Any, tenant: TenantHandle, tenant_id: str
) -> None:
    """Tenant ids cannot be probed: an unknown one gets the answer a real tenant without
    the integration gets, for good and for broken bodies alike."""
    headers = custom_signature("s3cret", CUSTOM_BODY, str(int(time.time())))

    unknown = client.post(f"/v1/wh/{tenant_id}/custom", content=CUSTOM_BODY, headers=headers)
    known = client.post(f"/v1/wh/{tenant.id}/custom", content=CUSTOM_BODY, headers=headers)

    assert_error(unknown, 401, "unknown_integration")
    if len(tenant_id) == 26:  # shaped like an id: exactly the answer of a real tenant
        assert unknown.json() == known.json()
    else:  # not an id at all: a hint, which says nothing of which tenants exist
        assert "not a tenant id" in unknown.json()["detail"]
    assert unknown.status_code == known.status_code
    broken = [
        client.post(f"/v1/wh/{t}/custom", content=b"{not json", headers=headers).json()
        for t in (tenant_id, tenant.id)
    ]
    assert broken[0]["error"] == "invalid_json"
    assert broken[0] == broken[1]
    assert runtime.queue.depth().messages == 0


# --- body checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b'{"title": "x"', b"\xff\xfe{}", b"NaN", b'{"a": 1}{"b": 2}'],
    ids=["garbage", "empty", "truncated", "bad-utf8", "nan", "two-documents"],
)
def test_invalid_json_is_400_with_the_parser_message(
    runtime: Runtime, client: Any, tenant: TenantHandle, body: bytes
) -> None:
    tenant.integration("custom", "s3cret")
    headers = custom_signature("s3cret", body, str(int(time.time())))

    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=headers)

    detail = assert_error(response, 400, "invalid_json")["detail"]
    assert len(detail) > len("body is not valid JSON: ")  # the parser's own words follow
    assert_nothing_kept(runtime, tenant)


def test_a_compressed_or_non_utf8_body_is_told_what_it_is(
    runtime: Runtime, client: Any, tenant: TenantHandle
) -> None:
    """Both used to read "str is not valid UTF-8: surrogates not allowed"."""
    tenant.integration("custom", "s3cret")
    url = f"/v1/wh/{tenant.id}/custom"
    packed = gzip.compress(CUSTOM_BODY)
    for extra in ({"Content-Encoding": "gzip"}, {}):
        headers = custom_signature("s3cret", packed, str(int(time.time()))) | extra
        response = client.post(url, content=packed, headers=headers)
        detail = assert_error(response, 415, "unsupported_media_type")["detail"]
        assert detail == "the body is compressed (gzip): send it as plain JSON"
    latin = '{"title": "Störung"}'.encode("latin-1")
    headers = custom_signature("s3cret", latin, str(int(time.time())))
    response = client.post(url, content=latin, headers=headers)
    detail = assert_error(response, 400, "invalid_json")["detail"]
    assert detail == "body is not UTF-8 text (byte 13 is not): JSON must be sent as UTF-8"
    assert_nothing_kept(runtime, tenant)


def _unreadable(provider: str, secret: str) -> bytes:
    """Valid JSON that no sender of ``provider`` would send."""
    if provider == "pagerduty-events":
        return json.dumps({"routing_key": secret, "hello": "world"}).encode()
    return b"[1, 2, 3]"


@pytest.mark.parametrize("provider", REGISTERED)
def test_valid_json_the_provider_cannot_read_is_dead_lettered(
    runtime: Runtime, client: Any, tenant: TenantHandle, provider: str
) -> None:
    secret = "dl-secret"
    body = _unreadable(provider, secret)
    recorded = seed(provider).recorded
    tenant.integration(provider, secret)
    headers = signed(provider, body, secret, recorded)
    delivery = delivery_for(provider, tenant.id, "e", lower(headers))
    assert isinstance(normalise_locally(provider, body, delivery), str), "not a PayloadError"

    response = client.post(f"/v1/wh/{tenant.id}/{provider}", content=body, headers=headers)

    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    drain(runtime)
    assert stored_records(runtime, tenant.id) == []
    [dead] = dead_letters(runtime, tenant.id)
    assert dead["event_id"] == event_id
    assert dead["provider"] == provider
    error = dead["error"]
    assert error.startswith("PayloadError: "), error  # a plain sentence, not a traceback
    assert "\n" not in error
    assert "Traceback" not in error
    assert len(error) < 500
    assert secret not in error
    kept = runtime.store.get_dead_letter(dead["id"])  # replayable: the raw body is kept
    assert kept is not None
    if provider == "pagerduty-events":  # … all but its credential (SECURITY.md)
        assert kept.event.body == body.replace(secret.encode(), b"[redacted]")
        assert kept.event.headers["x-dd0c-redacted"] == "body:routing_key"
    else:
        assert kept.event.body == body


# --- size limits and the claim check ------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Runtime, Any]]:
    with running(tmp_path / "small", max_body_bytes=4096, claim_check_bytes=1024) as pair:
        yield pair


def _custom_body(size: int) -> bytes:
    """A custom alert body of exactly ``size`` bytes."""
    head = b'{"title": "Big", "service": "db", "description": "'
    tail = b'"}'
    return head + b"d" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_cap_is_413(small: tuple[Runtime, Any], chunked: bool) -> None:
    runtime, client = small
    tenant = new_tenant(runtime)
    tenant.integration("custom", "s3cret")
    body = _custom_body(4097)
    headers = custom_signature("s3cret", body, str(int(time.time())))
    url = f"/v1/wh/{tenant.id}/custom"

    if chunked:  # no Content-Length: the cap must hold while streaming

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(body), 1000):
                yield body[start : start + 1000]

        response = client.post(url, content=pieces(), headers=headers)
        assert "content-length" not in {k.lower() for k in response.request.headers}
    else:
        response = client.post(url, content=body, headers=headers)

    assert_error(response, 413, "body_too_large")
    assert_nothing_kept(runtime, tenant)

    exactly = _custom_body(4096)
    ok = client.post(
        url, content=exactly, headers=custom_signature("s3cret", exactly, str(int(time.time())))
    )
    assert ok.status_code == 202, ok.text
    drain(runtime)


def test_declared_content_length_over_the_cap_is_413(small: tuple[Runtime, Any]) -> None:
    runtime, client = small
    tenant = new_tenant(runtime)
    tenant.integration("custom", "s3cret")
    body = _custom_body(4097)
    headers = custom_signature("s3cret", body, str(int(time.time())))
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=headers)
    assert_error(response, 413, "body_too_large")
    assert_nothing_kept(runtime, tenant)


def test_body_over_the_claim_check_threshold_is_archived_and_processed(
    small: tuple[Runtime, Any],
) -> None:
    runtime, client = small
    tenant = new_tenant(runtime)
    tenant.integration("custom", "s3cret")
    # Odd spacing and escapes: only the exact bytes are the exact bytes.
    body = (
        b'{ "title" :"Claim \\u00e9 check",\n\t"service":"db",  "severity": "high", '
        b'"description": "' + b"x" * 2000 + b'" }  '
    )
    assert 1024 < len(body) < 4096
    headers = custom_signature("s3cret", body, str(int(time.time())))

    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=headers)

    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    drain(runtime)
    [alert] = api_items(client, tenant, "/v1/alerts")
    assert alert["event_id"] == event_id
    assert (alert["title"], alert["severity"], alert["service"]) == ("Claim é check", "high", "db")
    assert alert["raw_ref"]
    raw = client.get(f"/v1/alerts/{alert['id']}/raw", headers=tenant.auth)
    assert raw.status_code == 200
    assert raw.content == body
    assert dead_letters(runtime, tenant.id) == []


# --- idempotency ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", WITH_DELIVERY_IDS)
def test_redelivery_with_the_same_delivery_id_is_a_duplicate(
    runtime: Runtime, client: Any, tenant: TenantHandle, provider: str
) -> None:
    case = seed(provider)
    header = PROVIDERS[provider].DELIVERY_ID_HEADERS[0]
    secret = integration_secret(provider, case.body, "idem-secret")
    tenant.integration(provider, secret)
    headers = signed(provider, case.body, secret, case.recorded)
    url = f"/v1/wh/{tenant.id}/{provider}"
    processed = runtime.worker.processed if runtime.worker else 0

    first = client.post(url, content=case.body, headers={**headers, header: "delivery-1"})
    second = client.post(url, content=case.body, headers={**headers, header: "delivery-1"})

    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text
    assert second.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}
    drain(runtime)
    assert runtime.worker is not None
    deadline = time.monotonic() + 10  # the count follows the commit that empties the queue
    while runtime.worker.processed == processed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runtime.worker.processed - processed == 1  # processed once
    assert runtime.queue.events_this_month(tenant.id) == 1
    event_ids = {item["event_id"] for item in stored_records(runtime, tenant.id)}
    assert event_ids == {first.json()["event_id"]}

    third = client.post(url, content=case.body, headers={**headers, header: "delivery-2"})
    assert third.status_code == 202, third.text  # another delivery id is another delivery
    assert third.json()["event_id"] != first.json()["event_id"]
    drain(runtime)


def test_idempotency_key_is_honoured_for_custom(
    runtime: Runtime, client: Any, tenant: TenantHandle
) -> None:
    tenant.integration("custom", "s3cret")
    url = f"/v1/wh/{tenant.id}/custom"
    processed = runtime.worker.processed if runtime.worker else 0

    def post(key: str, stamp: int) -> Any:
        headers = custom_signature("s3cret", CUSTOM_BODY, str(stamp))
        return client.post(url, content=CUSTOM_BODY, headers={**headers, "Idempotency-Key": key})

    first = post("key-1", int(time.time()))
    again = post("key-1", int(time.time()) - 5)  # re-signed later: still the same delivery

    assert first.status_code == 202, first.text
    assert again.status_code == 200, again.text
    assert again.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}
    drain(runtime)
    assert runtime.worker is not None
    deadline = time.monotonic() + 10  # counted just after the acknowledgement drain sees
    while runtime.worker.processed == processed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runtime.worker.processed - processed == 1
    [alert] = api_items(client, tenant, "/v1/alerts")
    assert alert["repeat_count"] == 1

    # Keys are per integration: another sender of the same tenant numbering its
    # deliveries alike is not a duplicate (answering it so would drop its alert).
    second = tenant.integration("custom", "other-s3cret")
    headers = custom_signature("other-s3cret", CUSTOM_BODY, str(int(time.time())))
    response = client.post(
        f"{url}/{second}", content=CUSTOM_BODY, headers={**headers, "Idempotency-Key": "key-1"}
    )
    assert (response.status_code, response.json()["status"]) == (202, "accepted"), response.text

    # And per tenant: another tenant's identical key is its own delivery.
    other = new_tenant(runtime)
    other.integration("custom", "s3cret")
    headers = custom_signature("s3cret", CUSTOM_BODY, str(int(time.time())))
    response = client.post(
        f"/v1/wh/{other.id}/custom",
        content=CUSTOM_BODY,
        headers={**headers, "Idempotency-Key": "key-1"},
    )
    assert response.status_code == 202, response.text
    drain(runtime)


# --- rate limit and quota ---------------------------------------------------------------------


def test_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    with running(tmp_path / "rate", rate_limit_per_second=2) as (runtime, client):
        tenant = new_tenant(runtime)
        tenant.integration("custom", "s3cret")
        url = f"/v1/wh/{tenant.id}/custom"
        statuses = []
        last = None
        for _ in range(6):
            headers = custom_signature("s3cret", CUSTOM_BODY, str(int(time.time())))
            last = client.post(url, content=CUSTOM_BODY, headers=headers)
            statuses.append(last.status_code)
            if last.status_code == 429:
                break
        assert last is not None
        assert statuses[0] == 202
        assert_error(last, 429, "rate_limited")
        assert int(last.headers["Retry-After"]) >= 1
        drain(runtime)
        assert runtime.queue.events_this_month(tenant.id) == statuses.count(202)
        assert len(api_items(client, tenant, "/v1/alerts")) == 1  # repeats fold, none lost
        [alert] = api_items(client, tenant, "/v1/alerts")
        assert alert["repeat_count"] == statuses.count(202)


def test_monthly_quota_is_429_quota_exceeded(tmp_path: Path) -> None:
    with running(tmp_path / "quota", monthly_quota=3) as (runtime, client):
        tenant = new_tenant(runtime)
        tenant.integration("custom", "s3cret")
        url = f"/v1/wh/{tenant.id}/custom"

        def post() -> Any:
            headers = custom_signature("s3cret", CUSTOM_BODY, str(int(time.time())))
            return client.post(url, content=CUSTOM_BODY, headers=headers)

        # The quota counts alerts the worker processed (domain.plans), re-read at once here.
        runtime.ingest.limits = replace(runtime.ingest.limits, quota_refresh_seconds=0)
        assert [post().status_code for _ in range(3)] == [202, 202, 202]
        drain(runtime)
        over = post()
        assert_error(over, 429, "quota_exceeded")
        assert int(over.headers["Retry-After"]) >= 1
        drain(runtime)
        assert runtime.queue.events_this_month(tenant.id) == 3
        assert runtime.store.alerts_this_month(tenant.id) == 3

        other = new_tenant(runtime)  # the quota is per tenant
        other.integration("custom", "s3cret")
        headers = custom_signature("s3cret", CUSTOM_BODY, str(int(time.time())))
        response = client.post(f"/v1/wh/{other.id}/custom", content=CUSTOM_BODY, headers=headers)
        assert response.status_code == 202, response.text
        drain(runtime)


# --- the read API -------------------------------------------------------------------------------


def _one_alert(runtime: Runtime, client: Any, tenant: TenantHandle) -> dict[str, Any]:
    tenant.integration("custom", "s3cret")
    headers = custom_signature("s3cret", CUSTOM_BODY, str(int(time.time())))
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=CUSTOM_BODY, headers=headers)
    assert response.status_code == 202, response.text
    drain(runtime)
    [alert] = api_items(client, tenant, "/v1/alerts")
    return alert


def test_another_tenants_alert_is_404(runtime: Runtime, client: Any, tenant: TenantHandle) -> None:
    alert = _one_alert(runtime, client, tenant)
    mine = client.get(f"/v1/alerts/{alert['id']}", headers=tenant.auth)
    assert mine.status_code == 200
    assert mine.json()["id"] == alert["id"]

    stranger = new_tenant(runtime)
    for path in (f"/v1/alerts/{alert['id']}", f"/v1/alerts/{alert['id']}/raw"):
        assert client.get(path, headers=stranger.auth).status_code == 404
    assert api_items(client, stranger, "/v1/alerts") == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer dd0c_not-a-key"}, {"Authorization": "Basic Zm9vOmJhcg=="}],
    ids=["none", "unknown-key", "basic"],
)
@pytest.mark.parametrize("path", ["/v1/alerts", "/v1/deploys", "/v1/alerts/whatever"])
def test_api_without_a_valid_key_is_401(client: Any, headers: dict[str, str], path: str) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize("cursor", ["!!!", "zzzz", "YWJj", "%%%%"])
@pytest.mark.parametrize("path", ["/v1/alerts", "/v1/deploys"])
def test_bad_cursor_is_400(client: Any, tenant: TenantHandle, path: str, cursor: str) -> None:
    response = client.get(path, headers=tenant.auth, params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"


def test_cursor_pages_through_everything(
    runtime: Runtime, client: Any, tenant: TenantHandle
) -> None:
    tenant.integration("custom", "s3cret")
    for n in range(5):
        body = json.dumps({"title": f"alert {n}", "service": "db"}).encode()
        headers = custom_signature("s3cret", body, str(int(time.time())))
        response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=headers)
        assert response.status_code == 202
    drain(runtime)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/alerts", headers=tenant.auth, params=params).json()
        seen += [item["title"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"alert {n}" for n in range(5)]


def test_a_utf8_byte_order_mark_is_ignored(client, tenant) -> None:
    tenant.integration("alertmanager", "bom-secret")
    body = b"\xef\xbb\xbf" + b'{"version": "4", "status": "firing", "alerts": [{"status": "firing",'
    body += b' "labels": {"alertname": "BomTest", "service": "api"}, "fingerprint": "bom1"}]}'
    response = client.post(
        f"/v1/wh/{tenant.id}/alertmanager",
        content=body,
        headers={"Authorization": "Bearer bom-secret"},
    )
    assert response.status_code == 202
    drain(tenant.runtime)
    [alert] = client.get("/v1/alerts", headers=tenant.auth).json()["items"]
    assert alert["fingerprint"] == "alertmanager:bom1"


def test_first_contact_mistakes_get_a_hint(client: Any, tenant: TenantHandle) -> None:
    """What a newcomer gets wrong first: the tenant's name in the URL, an ISO
    timestamp for ``custom``, an API key without ``Bearer``."""
    by_name = client.post("/v1/wh/acme/custom", content=b"{}")
    assert by_name.status_code == 401
    assert "not a tenant id" in by_name.json()["detail"]
    tenant.integration("custom", "hint-secret")
    iso = client.post(
        f"/v1/wh/{tenant.id}/custom",
        content=b'{"title": "x"}',
        headers={"X-DD0C-Timestamp": "2026-12-04T10:00:00Z", "X-DD0C-Signature": "v1=00"},
    )
    assert iso.status_code == 401
    assert iso.json()["error"] == "invalid_timestamp" and "ISO" in iso.json()["detail"]
    bare = client.get("/v1/incidents", headers={"Authorization": tenant.api_key})
    assert bare.status_code == 401 and "Bearer" in bare.json()["detail"]

"""Property tests: whatever a sender posts, ingestion never answers 5xx and never loses
an accepted event; and every provider module's normalise is total over JSON.

Through HTTP, each registered provider's real bodies are mutated (keys dropped, values
replaced by random JSON, huge strings, lone surrogates, deep nesting, wrong top-level
types, random bytes, BOM / UTF-16 encodings) and signed correctly, so the request gets
past authentication and the body itself is what is tested.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import drain
from dd0c_alert.domain.models import (
    AlertStatus,
    CanonicalAlert,
    DeployEvent,
    DeployStatus,
    Severity,
)
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.providers.base import Delivery, PayloadError
from dd0c_alert.providers.parse import json_document
from webhook_helpers import (
    FixtureCase,
    auth_headers,
    dead_letters,
    delivery_for,
    integration_secret,
    lower,
    new_tenant,
    normalise_locally,
    replayed_headers,
    routing_keys,
    running,
    seeds,
    stored_records,
)

pytestmark = pytest.mark.both_modes

REGISTERED = sorted(PROVIDERS)
MAX_BODY = 1024 * 1024  # Settings' default cap
SECRET = "robust-secret"

HTTP_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def _seeds(provider: str) -> list[FixtureCase]:
    found = seeds(provider)
    if not found:  # a provider registered without fixtures: mutate an empty object
        found = [FixtureCase(provider, Path(f"{provider}/empty.json"), b"{}", {}, None)]
    return found


SEEDS = {provider: _seeds(provider) for provider in REGISTERED}

# --- strategies ------------------------------------------------------------------------

#: Values that have broken timestamp, number and text parsers elsewhere.
EDGE_SCALARS = st.sampled_from(
    [
        "",
        " ",
        "null",
        "$EVENT_TITLE",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00Z",
        "0001-01-02T00:00:00+23:59",
        "2025-02-30T25:61:61Z",
        "2025-06-01T12:00:00.123456789123Z",
        "1e400",
        "-1",
        "NaN",
        "Infinity",
        "99999999999999999999999",
        "\u0000",
        "\u2028\u2029",
        "🙂" * 3,
        "javascript:alert(1)",
        "http://",
        "a:b:c=d",
        1e308,
        -(2**63),
        2**64,
        10**30,
        253402300800,
        253402300800000,
        0,
        -0.0,
        True,
        False,
    ]
)
LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff\udbff", "\udc00x"])
HUGE_STRINGS = st.sampled_from(["x", "é", "🙂", "\\", '"']).map(lambda char: char * 100_000)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    EDGE_SCALARS,
    LONE_SURROGATES,
    HUGE_STRINGS,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), LONE_SURROGATES), children, max_size=4),
    ),
    max_leaves=12,
)
#: Placeholder for a deeply nested value, spliced into the JSON text after dumping
#: (``json.dumps`` itself would hit the recursion limit).
DEEP = "\x00dd0c-deep\x00"


def _deep_text(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (capped: real bodies have thousands)."""
    found = [prefix]
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        children = []
    for key, child in children:
        found += _paths(child, (*prefix, key))
        if len(found) > 2000:
            break
    return found


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


def _drop(document: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return document
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return document


_TIME_KEY = re.compile(r"time|date|_at$|At$|start|end|updated|created", re.IGNORECASE)


def _time_field(path: tuple[Any, ...]) -> bool:
    return bool(path) and isinstance(path[-1], str) and bool(_TIME_KEY.search(path[-1]))


@st.composite
def mutated_document(draw: st.DrawFn, case: FixtureCase) -> Any:
    """A seed body with 1 to 4 random keys dropped or values replaced; time fields, where
    parsers are most fragile, get edge values on purpose."""
    document = json.loads(case.body)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(document)
        times = [path for path in paths if _time_field(path)]
        operation = draw(
            st.sampled_from(["drop", "replace", "time"] if times else ["drop", "replace"])
        )
        if operation == "time":
            document = _set(document, draw(st.sampled_from(times)), draw(EDGE_SCALARS))
            continue
        path = draw(st.sampled_from(paths))
        if path and operation == "drop":
            document = _drop(document, path)
        else:
            value = draw(st.one_of(JSON_VALUES, st.just(DEEP)))
            document = _set(document, path, value)
    return document


def _dump(document: Any, ensure_ascii: bool, depth: int, kind: str) -> bytes:
    text = json.dumps(document, ensure_ascii=ensure_ascii)
    text = text.replace(json.dumps(DEEP, ensure_ascii=ensure_ascii), _deep_text(depth, kind))
    # A lone surrogate is written as "\\ud800" (ensure_ascii) or as raw bytes that are
    # not valid UTF-8; both are what a buggy sender could put on the wire.
    return text.encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn, case: FixtureCase) -> tuple[bytes, str]:
    """A request body derived from ``case`` and what kind of mutation made it."""
    kind = draw(
        st.sampled_from(
            ["mutated"] * 6 + ["top-level", "random-bytes", "json-ish", "bom", "utf-16"]
        )
    )
    ascii_only = draw(st.booleans())
    depth = draw(st.sampled_from([50, 500, 1000, 1100]))
    shape = draw(st.sampled_from(["list", "dict"]))
    if kind == "mutated":
        return _dump(draw(mutated_document(case)), ascii_only, depth, shape), kind
    if kind == "top-level":
        document = draw(st.one_of(st.lists(JSON_VALUES, max_size=3), SCALARS, st.just(DEEP)))
        return _dump(document, ascii_only, depth, shape), kind
    if kind == "random-bytes":
        return draw(st.binary(max_size=64)), kind
    if kind == "json-ish":
        alphabet = '0123456789.-+eE[]{}",: \t\ntrufalsn\\u'
        return draw(st.text(alphabet=alphabet, max_size=40)).encode(), kind
    if kind == "bom":
        return b"\xef\xbb\xbf" + case.body, kind
    return case.body.decode("utf-8").encode(draw(st.sampled_from(["utf-16", "utf-16-le"]))), kind


# --- through HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, Any]]:
    with running(tmp_path_factory.mktemp("robustness")) as pair:
        yield pair


def _parses(body: bytes) -> bool:
    try:
        json_document(body)
    except orjson.JSONDecodeError:
        return False
    return True


def _expected_status(provider: str, body: bytes, secret: str) -> int:
    """What design §5 says the answer must be, in the order the checks are made."""
    if len(body) > MAX_BODY:
        return 413
    if not _parses(body):
        return 400
    if provider == "pagerduty-events":
        keys = routing_keys(body)
        if not keys or not all(isinstance(key, str) and key == secret for key in keys):
            return 401
    return 202


#: How a PartialPayload's text begins: its readable items are stored, the rest dead-lettered.
PARTIAL = re.compile(r"[0-9]+ of [0-9]+ items could not be read and were skipped")


@pytest.mark.parametrize("provider", REGISTERED)
@HTTP_SETTINGS
@given(data=st.data())
def test_any_body_is_answered_without_5xx_and_never_lost(
    service: tuple[Runtime, Any], provider: str, data: st.DataObject
) -> None:
    runtime, client = service
    case = data.draw(st.sampled_from(SEEDS[provider]), label="seed")
    body, kind = data.draw(bodies(case), label="body")
    tenant = new_tenant(runtime)  # fresh: a repeat of an earlier example cannot fold into it
    secret = integration_secret(provider, body, SECRET)
    tenant.integration(provider, secret)
    headers = {
        "Content-Type": "application/json",
        **replayed_headers(case.recorded, with_delivery_ids=False),
        **auth_headers(provider, body, secret, case.recorded),
    }

    response = client.post(f"/v1/wh/{tenant.id}/{provider}", content=body, headers=headers)

    assert response.status_code < 500, response.text
    event(f"{kind} -> {response.status_code}")
    expected = _expected_status(provider, body, secret)
    if kind == "utf-16":
        assert expected == 400
    assert response.status_code == expected, (kind, response.text[:500])
    if response.status_code != 202:
        assert "error" in response.json()
        return

    event_id = response.json()["event_id"]
    drain(runtime, timeout=5.0)
    stored = [item for item in stored_records(runtime, tenant.id) if item["event_id"] == event_id]
    dead = [item for item in dead_letters(runtime, tenant.id) if item["event_id"] == event_id]
    local = normalise_locally(
        provider, body, delivery_for(provider, tenant.id, event_id, lower(headers))
    )
    event("outcome: " + ("dead" if dead else "stored" if stored else "nothing"))
    # Never lost: stored, or dead-lettered, or understood as carrying nothing.
    assert stored or dead or local == [], (kind, local)
    if isinstance(local, str) and PARTIAL.match(local):  # some items were readable
        assert dead
        assert stored
        assert dead[0]["error"].startswith("PartialPayload: ")
    elif isinstance(local, str):  # PayloadError
        assert dead
        assert not stored
        assert dead[0]["error"].startswith("PayloadError: ")
    elif local:
        assert stored
        assert not dead, dead
    else:
        assert not stored
        assert not dead


# --- normalise directly: total over JSON, well-typed output --------------------------------

_EVENT_HEADERS = [
    {},
    *({"x-github-event": name} for name in ("deployment", "deployment_status", "workflow_run")),
    {"x-github-event": "workflow_job"},
    {"x-github-event": "ping"},
    *({"x-gitlab-event": name} for name in ("Deployment Hook", "Pipeline Hook", "Job Hook")),
    {"x-gitlab-event": "Push Hook"},
]
RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _aware(value: Any) -> bool:
    return (
        isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None
    )


def _storable_text(value: Any) -> bool:
    """A str that can be written as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_record(record: Any, provider: str, delivery: Delivery) -> None:
    assert isinstance(record, CanonicalAlert | DeployEvent), type(record)
    assert record.tenant_id == delivery.tenant_id
    assert record.source == provider
    assert record.source_ref
    if isinstance(record, CanonicalAlert):
        assert type(record.status) is AlertStatus
        assert type(record.severity) is Severity
        assert record.fingerprint
        assert _storable_text(record.fingerprint)
    else:
        assert type(record.status) is DeployStatus
    for field in dataclasses.fields(record):
        name = field.name
        value = getattr(record, name)
        if name in ("status", "severity"):
            continue
        if name in ("started_at", "received_at"):
            assert _aware(value), (name, value)
        elif name in ("ended_at", "finished_at"):
            assert value is None or _aware(value), (name, value)
        elif name in ("labels", "links"):
            assert isinstance(value, dict), (name, value)
            for key, item in value.items():
                assert _storable_text(key), (name, key)
                assert _storable_text(item), (name, key, item)
        else:
            assert _storable_text(value), (name, value)


@st.composite
def payloads(draw: st.DrawFn, provider: str) -> Any:
    """Arbitrary JSON, or one of the provider's real bodies with random mutations."""
    if draw(st.booleans()):
        return draw(JSON_VALUES)
    document = draw(mutated_document(draw(st.sampled_from(SEEDS[provider]))))
    # DEEP stands for nesting only on the wire; here a moderately deep value stands in.
    return json.loads(json.dumps(document).replace(json.dumps(DEEP), _deep_text(200, "list")))


@pytest.mark.parametrize("provider", REGISTERED)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_normalise_raises_only_payload_error_and_returns_typed_records(
    provider: str, data: st.DataObject
) -> None:
    payload = data.draw(payloads(provider), label="payload")
    recorded = [lower(case.recorded) for case in SEEDS[provider]]
    headers = data.draw(st.sampled_from(_EVENT_HEADERS + recorded), label="headers")
    delivery = Delivery(
        tenant_id="t1", provider=provider, event_id="e1", received_at=RECEIVED, headers=headers
    )
    try:
        records = PROVIDERS[provider].normalise(payload, delivery)
    except PayloadError as exc:
        assert str(exc)  # a readable reason, for the dead-letter store
        return
    assert isinstance(records, list)
    for record in records:
        check_record(record, provider, delivery)


# --- deterministic edges that random search reaches only by luck ---------------------------


EDGE_VALUES = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "0001-01-02T00:00:00+23:59",
    "2025-02-30T25:61:61Z",
    "2025-06-01T12:00:00.123456789123Z",
    "NaN",
    "Infinity",
    "1e400",
    "-1",
    "",
    1e308,
    -(2**63),
    2**64,
    253402300800,
    253402300800000,
    10**30,
    None,
    True,
    [],
    {},
]


@pytest.mark.parametrize("provider", REGISTERED)
def test_edge_values_in_every_time_field_never_escape_as_other_errors(provider: str) -> None:
    """Every time field of every seed, set to each edge value: PayloadError or typed
    records, never an OverflowError / ValueError that the worker would retry."""
    for case in SEEDS[provider]:
        headers = lower(case.recorded)
        document = json.loads(case.body)
        for path in filter(_time_field, _paths(document)):
            for value in EDGE_VALUES:
                mutated = _set(json.loads(case.body), path, value)
                delivery = Delivery(
                    tenant_id="t1",
                    provider=provider,
                    event_id="e1",
                    received_at=RECEIVED,
                    headers=headers,
                )
                where = (case.path.name, path, value)
                try:
                    records = PROVIDERS[provider].normalise(mutated, delivery)
                except PayloadError:
                    continue
                except Exception as exc:  # pragma: no cover - the failure being tested for
                    pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
                for record in records:
                    check_record(record, provider, delivery)


@pytest.mark.parametrize("depth", [900, 1000, 1020])
@pytest.mark.parametrize("provider", REGISTERED)
def test_deeply_nested_valid_json_is_accepted_and_kept(
    service: tuple[Runtime, Any], provider: str, depth: int
) -> None:
    """Nesting the JSON parser still reads (it stops at 1024) is valid JSON for every
    check on the way in, and the event is then stored or dead-lettered."""
    runtime, client = service
    case = min(SEEDS[provider], key=lambda seed: len(seed.body))
    document = json.loads(case.body)
    target = document[0] if isinstance(document, list) and document else document
    if isinstance(target, dict):
        target["dd0c_deep"] = DEEP
    body = _dump(document, True, depth, "list")
    assert _parses(body)
    tenant = new_tenant(runtime)
    secret = integration_secret(provider, body, SECRET)
    tenant.integration(provider, secret)
    headers = {
        "Content-Type": "application/json",
        **replayed_headers(case.recorded, with_delivery_ids=False),
        **auth_headers(provider, body, secret, case.recorded),
    }

    response = client.post(f"/v1/wh/{tenant.id}/{provider}", content=body, headers=headers)

    assert response.status_code == _expected_status(provider, body, secret), response.text
    if response.status_code == 202:
        event_id = response.json()["event_id"]
        drain(runtime, timeout=5.0)
        stored = [r for r in stored_records(runtime, tenant.id) if r["event_id"] == event_id]
        dead = [d for d in dead_letters(runtime, tenant.id) if d["event_id"] == event_id]
        local = normalise_locally(
            provider, body, delivery_for(provider, tenant.id, event_id, lower(headers))
        )
        assert stored or dead or local == []

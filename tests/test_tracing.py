"""Traces and the per-event log line (docs/operations.md, Traces): one webhook, through
serve's worker and notifier to the Slack stand-in, is one trace; the log lines of that
work carry its id. Spans go to the SDK's in-memory exporter; both modes (the trace
context rides in the SQLite queue table's headers and in pgmq's message headers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conftest import drain
from dd0c_alert import tracing
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.storage.tenancy import scope
from servers import free_port, start_serve
from stand_ins.otlp_collector import OtlpCollector
from stand_ins.slack_api import SlackStandIn
from test_notifications_e2e import (
    SECRET,
    TOKEN,
    configure,
    notifying,
    serve_env,
    top_level_posts,
    wait_until,
)
from webhook_helpers import auth_headers, make_settings, new_tenant, running

WEBHOOK_SPAN = "POST /v1/wh/{tenant_id}/{provider}"
SENDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER_PARENT = f"00-{SENDER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def _hex(value: int, width: int) -> str:
    return f"{value:0{width}x}"


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def _post(client: Any, tenant_id: str, integration: str, **headers: str) -> str:
    body = orjson.dumps([{"title": "checkout down", "service": "checkout", "severity": "high"}])
    response = client.post(
        f"/v1/wh/{tenant_id}/custom/{integration}",
        content=body,
        headers={
            "Content-Type": "application/json",
            **auth_headers("custom", body, SECRET, {}),
            **headers,
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


@pytest.mark.both_modes
def test_one_trace_from_the_webhook_through_the_decision_to_the_slack_call(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with (
        structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars, tracing.add_trace_id]
        ) as logs,
        notifying(tmp_path) as (runtime, client, slack, _),
    ):
        tenant = new_tenant(runtime)
        configure(runtime, tenant, email=False)
        event_id = _post(client, tenant.id, tenant.integration("custom", SECRET))
        drain(runtime)
        wait_until(lambda: top_level_posts(slack), what="the Slack post")
        wait_until(lambda: _named(spans, "dd0c.notify.slack"), what="the delivery span")

    (webhook,) = _named(spans, WEBHOOK_SPAN)
    trace_id = webhook.context.trace_id
    assert webhook.kind is SpanKind.SERVER and webhook.parent is None
    assert webhook.attributes is not None
    assert webhook.attributes["dd0c.event_id"] == event_id
    assert webhook.attributes["http.response.status_code"] == 202

    (event,) = [
        s
        for s in _named(spans, "dd0c.worker.event")
        if s.attributes and s.attributes["dd0c.event_id"] == event_id
    ]
    assert event.context.trace_id == trace_id
    assert event.parent is not None and event.parent.span_id == webhook.context.span_id
    (incident_id,) = event.attributes["dd0c.incident_ids"]  # type: ignore[index]
    # The batch span is a trace of its own, linked to each event's webhook.
    (batch,) = [
        s
        for s in _named(spans, "dd0c.worker.batch")
        if any(link.context.span_id == webhook.context.span_id for link in s.links)
    ]
    assert batch.context.trace_id != trace_id
    assert event.links[0].context.span_id == batch.context.span_id

    deliveries = _named(spans, "dd0c.notify.slack")
    assert deliveries, "no delivery span"
    for delivery in deliveries:
        assert delivery.context.trace_id == trace_id
        assert delivery.parent is not None and delivery.parent.span_id == event.context.span_id
        assert delivery.attributes is not None
        assert delivery.attributes["dd0c.incident_id"] == incident_id
    assert deliveries[0].attributes["dd0c.delivery.outcome"] == "delivered"  # type: ignore[index]

    # The log lines of that work: one per event (tenant, event, incident, trace), one
    # per delivery; every line naming this tenant carries the trace id.
    mine = [line for line in logs if line.get("tenant_id") == tenant.id]
    assert {"event_processed", "delivery_sent"} <= {line["event"] for line in mine}, mine
    assert all(line.get("trace_id") == _hex(trace_id, 32) for line in mine), mine
    (processed,) = [line for line in mine if line["event"] == "event_processed"]
    assert processed["event_id"] == event_id
    assert processed["incident_ids"] == [incident_id]


def test_a_senders_traceparent_is_continued_and_logged_with_tracing_on_or_off(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with (
        structlog.testing.capture_logs() as logs,
        running(tmp_path / "d") as (runtime, client),
    ):
        tenant = new_tenant(runtime)
        integration = tenant.integration("custom", SECRET)
        traced = _post(client, tenant.id, integration, traceparent=SENDER_PARENT)
        drain(runtime)
        tracing.use(None)  # off: no span, but the sender's trace id still reaches the log
        untraced = _post(client, tenant.id, integration, traceparent=SENDER_PARENT)
        drain(runtime)

    (webhook,) = _named(spans, WEBHOOK_SPAN)
    assert _hex(webhook.context.trace_id, 32) == SENDER_TRACE
    assert webhook.parent is not None and _hex(webhook.parent.span_id, 16) == "00f067aa0ba902b7"
    assert len(_named(spans, "dd0c.worker.event")) == 1
    processed = {line["event_id"]: line for line in logs if line["event"] == "event_processed"}
    assert processed[traced]["trace_id"] == SENDER_TRACE
    assert processed[untraced]["trace_id"] == SENDER_TRACE
    assert processed[traced]["tenant_id"] == tenant.id
    # the second post repeats the first alert: its own line names the incident it
    # folded into (it was attributed to the first event, and read as deciding nothing)
    assert processed[untraced]["outcomes"] == ["dedup"]
    assert processed[untraced]["incident_ids"] == processed[traced]["incident_ids"] != []


#: What a sender can put in ``traceparent``: nothing of it may reach the log line, the
#: stored deliveries or a trace unchecked.
HOSTILE_PARENTS = (
    SENDER_PARENT + "-" + "a" * 2000,  # a valid start, then 2 kB (a version-00 header is 55)
    f"00-{'z' * 32}-00f067aa0ba902b7-01",  # not hex
    f"00-{SENDER_TRACE[:16]}\x1b[31m\n{SENDER_TRACE[:13]}-00f067aa0ba902b7-01",  # escapes
    f"ff-{SENDER_TRACE}-00f067aa0ba902b7-01",  # version ff is forbidden
    f"00-{SENDER_TRACE}-{'0' * 16}-01",  # no parent span
)


@pytest.mark.both_modes
def test_a_hostile_traceparent_is_neither_trusted_nor_kept_and_the_alert_still_notifies(
    tmp_path: Path,
) -> None:
    # Tracing off (the default): the sender's header was kept as sent, logged as the
    # trace id and written to the deliveries' traceparent column (64 characters: on
    # PostgreSQL the batch failed and the alerts were dead-lettered, never notified).
    with (
        structlog.testing.capture_logs() as logs,
        notifying(tmp_path) as (runtime, client, slack, _),
    ):
        tenant = new_tenant(runtime)
        configure(runtime, tenant, email=False)
        integration = tenant.integration("custom", SECRET)
        for n, parent in enumerate(HOSTILE_PARENTS):
            body = orjson.dumps([{"title": f"down {n}", "service": f"svc{n}", "severity": "high"}])
            headers = {"Content-Type": "application/json", "traceparent": parent}
            headers |= auth_headers("custom", body, SECRET, {})
            response = client.post(
                f"/v1/wh/{tenant.id}/custom/{integration}", content=body, headers=headers
            )
            assert response.status_code == 202, response.text
        drain(runtime)
        wait_until(lambda: len(top_level_posts(slack)) >= len(HOSTILE_PARENTS), what="the posts")
        assert runtime.store.list_dead_letters(tenant.id, 10) == []
        with runtime.outbox._engine.begin() as conn:  # the column no API shows
            scope(conn, tenant.id)
            kept = conn.execute(sa.text("SELECT traceparent FROM deliveries")).scalars().all()
    assert len(kept) >= len(HOSTILE_PARENTS)
    assert set(kept) == {None}, kept
    processed = [line for line in logs if line["event"] == "event_processed"]
    assert len(processed) == len(HOSTILE_PARENTS)
    assert all(line.get("trace_id") is None for line in processed), processed


def test_with_tracing_on_a_hostile_traceparent_starts_a_trace_of_its_own(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with running(tmp_path / "d") as (runtime, client):
        tenant = new_tenant(runtime)
        integration = tenant.integration("custom", SECRET)
        for parent in HOSTILE_PARENTS:
            _post(client, tenant.id, integration, traceparent=parent)
        drain(runtime)
    webhooks = _named(spans, WEBHOOK_SPAN)
    assert len(webhooks) == len(HOSTILE_PARENTS)
    assert all(span.parent is None for span in webhooks)
    assert all(_hex(span.context.trace_id, 32) != SENDER_TRACE for span in webhooks)
    assert len(_named(spans, "dd0c.worker.event")) == len(HOSTILE_PARENTS)


def test_a_senders_traceparent_is_checked_and_kept_in_its_canonical_form() -> None:
    assert tracing.sender_traceparent(SENDER_PARENT) == SENDER_PARENT
    assert tracing.sender_traceparent(f" {SENDER_PARENT.upper()} ") is None  # hex is lower case
    assert tracing.sender_traceparent(f"01-{SENDER_TRACE}-00f067aa0ba902b7-01-later") == (
        f"00-{SENDER_TRACE}-00f067aa0ba902b7-01"  # a later version's fields are dropped
    )
    for parent in (*HOSTILE_PARENTS, None, "", "garbage"):
        assert tracing.sender_traceparent(parent) is None, parent
        assert tracing.trace_id_of(parent) is None, parent


def test_tracing_is_off_unless_the_setting_or_the_standard_variables_ask() -> None:
    assert not tracing.wanted(None, {})
    assert tracing.wanted(True, {})
    assert tracing.wanted(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted(None, {"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.wanted(None, {"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.wanted(False, {"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.wanted(True, {"OTEL_SDK_DISABLED": "true"})
    assert Settings(otel_enabled=None).otel_enabled is None


def test_trace_ids_are_read_from_a_traceparent() -> None:
    assert tracing.trace_id_of(SENDER_PARENT) == SENDER_TRACE
    assert tracing.trace_id_of(None) is None
    assert tracing.trace_id_of("garbage") is None
    assert tracing.trace_id_of(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None
    assert tracing.span_context(SENDER_PARENT) is not None
    assert tracing.span_context("00-nothex-00f067aa0ba902b7-01") is None


@pytest.mark.slow
def test_serve_exports_one_trace_over_otlp_across_its_two_processes(tmp_path: Path) -> None:
    """The real ``serve``, switched on by the standard variable alone: the webhook span
    is exported by the HTTP process, the event and delivery spans by its background
    process, all in one trace."""
    with SlackStandIn((TOKEN,)) as slack, OtlpCollector() as collector:
        settings = make_settings(tmp_path / "d", slack_api_url=slack.base_url)
        setup = build_runtime(settings, roles=frozenset())
        tenant = new_tenant(setup)
        configure(setup, tenant, email=False)
        integration = tenant.integration("custom", SECRET)
        setup.stop()
        env = serve_env(
            settings,
            DD0C_SLACK_API_URL=slack.base_url,
            DD0C_SUGGEST_INTERVAL_SECONDS="0",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        port = free_port()
        server = start_serve(env, port, tmp_path / "serve.log")
        try:
            body = orjson.dumps([{"title": "db down", "service": "db", "severity": "critical"}])
            headers = {
                "Content-Type": "application/json",
                **auth_headers("custom", body, SECRET, {}),
            }
            url = f"http://127.0.0.1:{port}/v1/wh/{tenant.id}/custom/{integration}"
            answer = httpx.post(url, content=body, headers=headers)
            assert answer.status_code == 202
            event_id = answer.json()["event_id"]
            wait_until(lambda: collector.named("dd0c.notify.slack"), what="the delivery span")
        finally:
            server.terminate()
            server.wait(timeout=15)
        assert top_level_posts(slack)

    (webhook,) = collector.named(WEBHOOK_SPAN)
    (event,) = collector.named("dd0c.worker.event")
    (delivery, *_) = collector.named("dd0c.notify.slack")
    assert webhook.attributes["dd0c.event_id"] == event_id
    assert event.trace_id == webhook.trace_id == delivery.trace_id
    assert event.parent_span_id == webhook.span_id
    assert delivery.parent_span_id == event.span_id
    assert webhook.resource["service.name"] == "dd0c-alert"
    assert webhook.resource["dd0c.roles"] == "api,ingest"
    assert "correlate" in delivery.resource["dd0c.roles"]
    (batch,) = collector.named("dd0c.worker.batch")
    assert batch.links == (webhook.span_id,)

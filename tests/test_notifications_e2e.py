"""Notifications end to end, through the webhook: one living Slack message per
incident, thread replies, mails and signed webhooks, against real local stand-ins
(the Slack Web API stand-in, aiosmtpd, a webhook receiver). Both modes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain
from dd0c_alert.app import build_runtime
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import IncidentFilter
from servers import free_port, start_serve
from stand_ins.slack_api import SlackStandIn
from stand_ins.smtp import SmtpStandIn
from webhook_helpers import auth_headers, make_settings, new_tenant, running

pytestmark = pytest.mark.both_modes
TOKEN = "xoxb-e2e-token-0123456789"
SIGNING = "slack-signing-secret-e2e"
SECRET = "e2e-integration-secret"
#: The bound on a storm incident's message updates: one post, then at most one
#: update per coalescing interval while it grows, plus the final state.
MAX_UPDATES_PER_INCIDENT = 12


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


@contextmanager
def notifying(
    tmp_path: Path, **overrides: Any
) -> Iterator[tuple[Runtime, TestClient, SlackStandIn, SmtpStandIn]]:
    with SlackStandIn((TOKEN,)) as slack, SmtpStandIn() as smtp:
        settings = {
            "slack_api_url": slack.base_url,
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_tls": "none",
            "smtp_from": "dd0c <alerts@dd0c.example>",
            "notify_coalesce_seconds": 1.0,
            "notify_poll_seconds": 0.05,
            "notify_slack_per_second": 20.0,
            "digest_hour": -1,  # the digest has its own test: no daily mail in the counts
            **overrides,
        }
        with running(tmp_path / "d", **settings) as (runtime, client):
            yield runtime, client, slack, smtp


def configure(runtime: Runtime, tenant: TenantHandle, *, email: bool = True) -> None:
    runtime.notify_settings.put_slack(
        tenant.id, bot_token=TOKEN, signing_secret=SIGNING, default_channel="#oncall"
    )
    destinations: list[dict[str, Any]] = [{"type": "slack", "channel": "#oncall"}]
    if email:
        destinations.append({"type": "email", "to": ["oncall@example.com"]})
    runtime.notify_settings.save_route(
        tenant.id, {"name": "everything", "destinations": destinations}
    )


def post(client: TestClient, tenant: TenantHandle, integration: str, alerts: Any) -> None:
    body = orjson.dumps(alerts)
    response = client.post(
        f"/v1/wh/{tenant.id}/custom/{integration}",
        content=body,
        headers={"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})},
    )
    assert response.status_code == 202, response.text


def cascade(status: str = "firing") -> list[dict[str, Any]]:
    """200 alerts across 5 services, 40 distinct alerts each."""
    return [
        {
            "title": f"{service} check {n}",
            "service": service,
            "severity": "critical" if n == 0 else "high",
            "status": status,
            "fingerprint": f"{service}-{n}",
        }
        for service in ("checkout", "payments", "search", "cart", "auth")
        for n in range(40)
    ]


def incidents(client: TestClient, tenant: TenantHandle) -> list[dict[str, Any]]:
    response = client.get("/v1/incidents?limit=100", headers=tenant.auth)
    assert response.status_code == 200
    return list(response.json()["items"])


def top_level_posts(slack: SlackStandIn) -> list[Any]:
    return [c for c in slack.calls_of("chat.postMessage") if not c.args.get("thread_ts")]


def test_a_cascade_gives_one_living_message_per_incident_with_mails_and_threads(
    tmp_path: Path,
) -> None:
    with notifying(tmp_path) as (runtime, client, slack, smtp):
        tenant = new_tenant(runtime)
        configure(runtime, tenant)
        integration = tenant.integration("custom", SECRET)
        alerts = cascade()
        for start in range(0, len(alerts), 10):  # a storm arrives in many webhooks
            post(client, tenant, integration, alerts[start : start + 10])
        drain(runtime, timeout=60)
        found = incidents(client, tenant)
        assert len(found) == 5
        wait_until(lambda: len(top_level_posts(slack)) >= 5, what="five posts")
        wait_until(
            lambda: all(
                d["status"] == "delivered"
                for i in found
                for d in runtime.outbox.incident_deliveries(tenant.id, i["id"])
            ),
            what="every delivery delivered",
        )
        posts = top_level_posts(slack)
        by_incident = [c.args["metadata"]["event_payload"]["incident_id"] for c in posts]
        assert sorted(by_incident) == sorted(i["id"] for i in found)  # exactly one each
        messages = slack.messages("#oncall")
        assert len(messages) == 5
        # The message shows the final state: every incident's 40 alerts.
        for message in messages:
            assert "40 alerts" in orjson.dumps(message["blocks"]).decode()
        updates = slack.calls_of("chat.update")
        per_incident = {ts: 0 for ts in (m["ts"] for m in messages)}
        for call in updates:
            per_incident[str(call.args["ts"])] += 1
        assert max(per_incident.values()) <= MAX_UPDATES_PER_INCIDENT, per_incident
        wait_until(lambda: len(smtp.messages) >= 5, what="five mails")
        opened_mails = {m["Message-ID"] for m in smtp.messages}
        assert len(opened_mails) == 5

        # Everything resolves: each message shows it, with a reply in its thread and a mail.
        for start in range(0, len(alerts), 50):
            post(client, tenant, integration, cascade("resolved")[start : start + 50])
        drain(runtime, timeout=60)
        wait_until(
            lambda: all(i["status"] == "resolved" for i in incidents(client, tenant)),
            what="incidents resolved",
        )
        wait_until(
            lambda: all(slack.replies("#oncall", m["ts"]) for m in slack.messages("#oncall")),
            what="a resolve reply in every thread",
        )
        wait_until(lambda: len(smtp.messages) >= 10, what="five resolve mails")
        resolved_mails = [m for m in smtp.messages if m["Message-ID"] not in opened_mails]
        assert {m["In-Reply-To"] for m in resolved_mails} == opened_mails  # threaded
        wait_until(
            lambda: all(
                "actions" not in orjson.dumps(m["blocks"]).decode()
                for m in slack.messages("#oncall")
            ),
            what="resolved messages without buttons",
        )
        assert len(top_level_posts(slack)) == 5  # still exactly one message per incident
        detail = client.get(f"/v1/incidents/{found[0]['id']}", headers=tenant.auth).json()
        assert "id" in detail


def test_slack_429_then_500_then_a_lost_answer_still_gives_one_message_and_mail_is_not_delayed(
    tmp_path: Path,
) -> None:
    with notifying(tmp_path, notify_slack_per_second=50.0) as (runtime, client, slack, smtp):
        tenant = new_tenant(runtime)
        configure(runtime, tenant)
        integration = tenant.integration("custom", SECRET)
        slack.script("chat.postMessage", "ratelimited:1", "http_500", "accept_then_drop")
        started = time.monotonic()
        post(
            client,
            tenant,
            integration,
            [{"title": "db down", "service": "db", "severity": "critical"}],
        )
        drain(runtime)
        wait_until(lambda: smtp.messages, what="the mail")
        mail_after = time.monotonic() - started
        [incident] = incidents(client, tenant)
        wait_until(
            lambda: any(
                d["kind"] == "message" and d["status"] == "delivered"
                for d in runtime.outbox.incident_deliveries(tenant.id, incident["id"])
            ),
            timeout=90,
            what="the Slack message delivered",
        )
        slack_after = time.monotonic() - started
        assert len(slack.messages("#oncall")) == 1  # the dropped answer was not re-posted
        faults = [c.fault for c in slack.calls_of("chat.postMessage")]
        assert faults[:3] == ["ratelimited:1", "http_500", "accept_then_drop"]
        assert slack.calls_of("conversations.history"), "the lost answer was looked for"
        [message] = [
            d
            for d in runtime.outbox.incident_deliveries(tenant.id, incident["id"])
            if d["kind"] == "message"
        ]
        assert [t["ok"] for t in message["tries"]][:3] == [False, False, False]
        print(f"\nmail after {mail_after:.2f} s, Slack message after {slack_after:.2f} s")
        assert mail_after < slack_after  # Slack's trouble did not hold the mail back


def serve_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment of a ``dd0c-alert serve`` on ``settings``' data folder and, in
    the production pass, its PostgreSQL, Redis and keys; nothing of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "OTEL_"))}
    env |= {"DD0C_DATA_DIR": str(settings.data_dir), **extra}
    if settings.database_url:
        env |= {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "DD0C_SECRET_KEY": settings.secret_key,
            "DD0C_JWT_SECRET": settings.jwt_secret,
        }
    return env


def test_a_notifier_killed_mid_post_posts_once_after_restart(tmp_path: Path) -> None:
    """SIGKILL while Slack holds an accepted post unanswered: after the restart the
    delivery finds its message by metadata and updates it; nothing is posted twice.
    Embedded, the restarted notifier is the only one and takes the dead one's lease at
    once; with PostgreSQL others may run, so the lease (2 s here) has to end."""
    with SlackStandIn((TOKEN,)) as slack:
        slack.script("chat.postMessage", "accept_then_hang:60")
        settings = make_settings(tmp_path / "d", slack_api_url=slack.base_url)
        setup = build_runtime(settings, roles=frozenset())
        tenant = new_tenant(setup)
        configure(setup, tenant, email=False)
        integration = tenant.integration("custom", SECRET)
        env = serve_env(
            settings,
            DD0C_SLACK_API_URL=slack.base_url,
            DD0C_NOTIFY_LEASE_SECONDS="2" if settings.database_url else "3600",
            DD0C_SUGGEST_INTERVAL_SECONDS="0",
            DD0C_LOG_LEVEL="warning",
        )
        port = free_port()
        server = start_serve(env, port, tmp_path / "serve.log")
        try:
            body = orjson.dumps({"title": "db down", "service": "db", "severity": "critical"})
            headers = {
                "Content-Type": "application/json",
                **auth_headers("custom", body, SECRET, {}),
            }
            url = f"http://127.0.0.1:{port}/v1/wh/{tenant.id}/custom/{integration}"
            assert httpx.post(url, content=body, headers=headers).status_code == 202
            wait_until(lambda: slack.calls_of("chat.postMessage"), what="the post in flight")
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
        assert len(slack.messages("#oncall")) == 1  # Slack kept the post; nobody knows it
        server = start_serve(env, port, tmp_path / "serve.log")
        try:
            [incident] = setup.store.list_incidents(tenant.id, IncidentFilter(), 10, None).items

            def delivered() -> bool:
                return any(
                    d["kind"] == "message" and d["status"] == "delivered"
                    for d in setup.outbox.incident_deliveries(tenant.id, incident["id"])
                )

            wait_until(delivered, timeout=60, what="the delivery after the restart")
        finally:
            server.terminate()
            server.wait(timeout=15)
        assert len(slack.messages("#oncall")) == 1
        assert len(top_level_posts(slack)) == 1
        assert slack.calls_of("conversations.history")
        assert slack.calls_of("chat.update")  # adopted, then brought up to date
        setup.stop()

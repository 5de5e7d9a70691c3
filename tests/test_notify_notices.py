"""A destination that stops for good is said so elsewhere, and the daily digest goes
out once a day; with the notifier on a clock the test controls. Both modes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import drain
from dd0c_alert.app import build_runtime, notify_config
from dd0c_alert.correlation.rules import zone_named
from dd0c_alert.pipeline.notifier import Notifier, _day_span
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app
from stand_ins.slack_api import SlackStandIn
from stand_ins.smtp import SmtpStandIn
from webhook_helpers import auth_headers, make_settings, new_tenant

pytestmark = pytest.mark.both_modes
TOKEN = "xoxb-notice-token"
SECRET = "notice-secret"


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def setup(
    tmp_path: Path,
) -> Iterator[tuple[Runtime, TestClient, SlackStandIn, SmtpStandIn, Notifier, Clock]]:
    with SlackStandIn((TOKEN,)) as slack, SmtpStandIn() as smtp:
        settings = make_settings(
            tmp_path / "d",
            slack_api_url=slack.base_url,
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_tls="none",
            notify_slack_per_second=100.0,
            notify_escalation_check_seconds=0.0,
            digest_hour=8,
        )
        runtime = build_runtime(settings, roles=frozenset({"ingest", "correlate", "api"}))
        clock = Clock()
        notifier = Notifier(runtime.store, runtime.outbox, notify_config(settings), clock=clock)
        with TestClient(create_app(runtime)) as client:
            yield runtime, client, slack, smtp, notifier, clock


def notify(notifier: Notifier) -> None:
    async def passes() -> None:
        for _ in range(3):
            await notifier.run_once()
            await notifier.drain()

    asyncio.run(passes())


def fire(client: TestClient, runtime: Runtime, tenant_id: str, integration: str) -> None:
    body = orjson.dumps({"title": "db down", "service": "db", "severity": "critical"})
    response = client.post(
        f"/v1/wh/{tenant_id}/custom/{integration}",
        content=body,
        headers={"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})},
    )
    assert response.status_code == 202
    drain(runtime)


def test_a_stopped_slack_channel_is_told_by_mail_and_shown_in_the_api(
    setup: tuple[Runtime, TestClient, SlackStandIn, SmtpStandIn, Notifier, Clock],
) -> None:
    runtime, client, slack, smtp, notifier, clock = setup
    clock.at = datetime.now(UTC).replace(hour=3)  # before the digest hour
    tenant = new_tenant(runtime)
    runtime.notify_settings.put_slack(
        tenant.id, bot_token=TOKEN, signing_secret="s", default_channel="#x"
    )
    runtime.notify_settings.save_route(
        tenant.id,
        {
            "name": "ops",
            "destinations": [
                {"type": "slack", "channel": "#archived"},
                {"type": "email", "to": ["lead@example.com"]},
            ],
        },
    )
    slack.script("chat.postMessage", "error:is_archived")
    fire(client, runtime, tenant.id, tenant.integration("custom", SECRET))
    notify(notifier)
    health = client.get("/v1/destinations", headers=tenant.auth).json()["items"]
    states = {(h["destination_type"], h["destination"]): h["state"] for h in health}
    assert states[("slack", "#archived")] == "stopped"
    notices = [m for m in smtp.messages if "notice" in m["Message-ID"]]
    assert len(notices) == 1 and "is_archived" in notices[0].get_content()
    assert "stopped notifying slack #archived" in notices[0].get_content()
    assert notices[0]["To"] == "lead@example.com"
    failed = client.get("/v1/deliveries?status=failed", headers=tenant.auth).json()["items"]
    assert [d["destination"] for d in failed] == ["#archived"]


def test_the_daily_digest_goes_out_once_after_its_hour(
    setup: tuple[Runtime, TestClient, SlackStandIn, SmtpStandIn, Notifier, Clock],
) -> None:
    runtime, client, _, smtp, notifier, clock = setup
    tenant = new_tenant(runtime, "digest-co")
    runtime.notify_settings.save_route(
        tenant.id, {"name": "mail", "destinations": [{"type": "email", "to": ["team@example.com"]}]}
    )
    fire(client, runtime, tenant.id, tenant.integration("custom", SECRET))
    today = datetime.now(UTC)
    clock.at = (today + timedelta(days=1)).replace(hour=7, minute=0)
    notify(notifier)
    assert not [m for m in smtp.messages if "digest" in m["Message-ID"]]
    clock.at = clock.at.replace(hour=9)
    notify(notifier)
    notify(notifier)
    digests = [m for m in smtp.messages if "digest" in m["Message-ID"]]
    assert len(digests) == 1
    text = digests[0].get_body(("plain",)).get_content()
    assert "digest-co" in digests[0]["Subject"] + text
    assert "1" in text  # one incident, one alert


def test_a_digest_the_notifier_was_down_for_goes_out_late(
    setup: tuple[Runtime, TestClient, SlackStandIn, SmtpStandIn, Notifier, Clock],
) -> None:
    """Down from before the digest's hour until after the next midnight: the pass
    after asked for the next day's digest, and the day's was never sent."""
    runtime, client, _, smtp, notifier, clock = setup
    tenant = new_tenant(runtime, "late-co")
    runtime.notify_settings.save_route(
        tenant.id, {"name": "mail", "destinations": [{"type": "email", "to": ["team@example.com"]}]}
    )
    fire(client, runtime, tenant.id, tenant.integration("custom", SECRET))
    today = datetime.now(UTC)
    clock.at = (today + timedelta(days=1)).replace(hour=7, minute=0)
    notify(notifier)  # before the hour: yesterday's is due, and late-co did not exist
    assert not [m for m in smtp.messages if "digest" in m["Message-ID"]]

    clock.at = (today + timedelta(days=2)).replace(hour=1, minute=0)  # down since
    notify(notifier)
    notify(notifier)
    [late] = [m for m in smtp.messages if "digest" in m["Message-ID"]]
    assert today.date().isoformat() in late["Message-ID"] + late["Subject"]
    assert "1" in late.get_body(("plain",)).get_content()  # today's incident

    clock.at = clock.at.replace(hour=9)
    notify(notifier)
    digests = [m for m in smtp.messages if "digest" in m["Message-ID"]]
    assert len(digests) == 2  # and the next day's on time


def test_a_tenants_digest_covers_its_own_day_and_arrives_in_its_morning(
    setup: tuple[Runtime, TestClient, SlackStandIn, SmtpStandIn, Notifier, Clock],
) -> None:
    """``time_zone`` Asia/Tokyo (UTC+9): the digest of a Tokyo day goes out after 08:00
    in Tokyo, 23:00 UTC the evening before, not after 08:00 UTC (17:00 in Tokyo)."""
    runtime, _, _, smtp, notifier, clock = setup
    tenant = new_tenant(runtime, "tokyo-co")
    runtime.notify_settings.save_route(
        tenant.id, {"name": "mail", "destinations": [{"type": "email", "to": ["team@example.com"]}]}
    )
    runtime.store.update_settings(tenant.id, {"time_zone": "Asia/Tokyo"})
    day = (datetime.now(UTC) + timedelta(days=3)).date()

    def digests() -> list[str]:
        return [m["Subject"] for m in smtp.messages if "digest" in m["Message-ID"]]

    clock.at = datetime.combine(day, datetime.min.time(), UTC).replace(hour=22, minute=30)
    notify(notifier)  # 07:30 the next morning in Tokyo: the day before is due
    assert len(digests()) == 1 and (day - timedelta(days=1)).isoformat() in digests()[0]
    clock.at = clock.at.replace(hour=23)  # 08:00 in Tokyo
    notify(notifier)
    notify(notifier)
    assert len(digests()) == 2 and day.isoformat() in digests()[1]


def test_a_day_on_a_clock_with_daylight_saving_time_is_23_or_25_hours() -> None:
    berlin = zone_named("Europe/Berlin")
    for day, hours in ((date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 7, 1), 24)):
        start, end = _day_span(day, berlin)
        assert end - start == timedelta(hours=hours)
        assert start.astimezone(berlin).hour == 0

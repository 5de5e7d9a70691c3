"""The dashboard as the on-call engineer meets it at 3 a.m., in Chromium against the
shared ``serve``: what only a browser shows. Payload text too long for a phone must
not push the page sideways, the times the script rewrites keep their zone, and a live
list whose stream is cut says so instead of looking calm."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import orjson

from dd0c_alert.storage.ports import IncidentFilter
from webhook_helpers import auth_headers

from .helpers import MARKS, PASSWORD, Server, sync_api

pytestmark = MARKS
EMAIL = "night@example.com"
SECRET = "on-call-browser-secret"
#: One unbroken word, as a URL or a hash in a title is.
LONG = "checkout-" + "x" * 600


def team_with_an_incident(server: Server) -> str:
    """A team of its own with one incident whose title and service are ``LONG``; the
    incident's path."""
    answer = httpx.post(
        server.base + "/v1/auth/signup",
        json={"tenant_name": "Night", "email": EMAIL, "password": PASSWORD},
    )
    assert answer.status_code == 201, answer.text
    tenant = answer.json()["tenant_id"]
    made = server.setup.store.create_integration(tenant, "custom", "night", SECRET)
    body = orjson.dumps({"title": LONG, "service": LONG[:200], "severity": "critical"})
    headers = {"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})}
    url = f"{server.base}/v1/wh/{tenant}/custom/{made.id}"
    assert httpx.post(url, content=body, headers=headers).status_code == 202
    deadline = time.monotonic() + 20
    while not (found := server.setup.store.list_incidents(tenant, IncidentFilter(), 1, None).items):
        assert time.monotonic() < deadline, "no incident"
        time.sleep(0.1)
    return f"/incidents/{found[0]['id']}"


def log_in(browser: Any, server: Server, width: int) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": 800}, timezone_id="America/New_York"
    )
    page = context.new_page()
    page.goto(server.base + "/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    sync_api.expect(page).to_have_url(re.compile(r"/incidents$"))
    return page


def test_long_payload_text_and_times_on_a_phone(server: Server, browser: Any) -> None:
    incident = team_with_an_incident(server)
    page = log_in(browser, server, 375)
    for path in ("/incidents", incident, "/analytics", "/onboarding"):
        page.goto(server.base + path)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= 376, f"{path} scrolls sideways on a 375 px phone: {scroll} px"
    page.goto(server.base + incident)
    shown = page.locator("time").first.inner_text()
    assert re.search(r"E[SD]T|GMT-[45]", shown), f"a time without its zone: {shown!r}"
    page.context.close()


def test_a_cut_live_stream_is_reported_then_cleared(server: Server, browser: Any) -> None:
    page = log_in(browser, server, 1280)
    live = page.locator("#live")
    page.route("**/incidents/stream*", lambda route: route.abort())  # the server is down
    page.reload()
    sync_api.expect(live).to_contain_text("Live updates lost", timeout=15_000)
    page.unroute("**/incidents/stream*")  # it is back: the browser reconnects
    sync_api.expect(live).not_to_contain_text("lost", timeout=15_000)
    page.route("**/incidents/stream*", lambda route: route.fulfill(status=502, body="down"))
    page.reload()  # a proxy's 502: the browser gives up at once
    sync_api.expect(live).to_contain_text("reload the page", timeout=10_000)
    page.context.close()

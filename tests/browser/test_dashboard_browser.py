"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven by the
``playwright`` package; ``playwright install`` is never needed) against a real
``dd0c-alert serve`` process (``conftest``, shared with the other modules): the
walk of issue #10, a viewer, axe-core on every page, and screenshots of every main
page at desktop and phone sizes, light and dark, in ``test-artifacts/screenshots/``.

CI needs the Debian package ``chromium`` (its dependencies come with it) and, for
readable screenshots, ``fonts-dejavu-core``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from dd0c_alert.correlation.suggestions import Suggestion
from dd0c_alert.storage.ports import IncidentFilter
from dd0c_alert.web.passwords import hash_password
from stand_ins.slack_api import SlackStandIn
from webhook_helpers import auth_headers

from .helpers import MARKS, PASSWORD, SHOTS, SIZES, SLACK_TOKEN, Server, check_axe, sync_api

pytestmark = MARKS
OWNER = "owner@example.com"
VIEWER = "viewer@example.com"


def send_alert(server: Server, url: str, secret: str, **alert: Any) -> None:
    body = orjson.dumps({"title": "db down", "service": "db", "severity": "critical", **alert})
    headers = {"Content-Type": "application/json", **auth_headers("custom", body, secret, {})}
    assert httpx.post(url, content=body, headers=headers).status_code == 202


def wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def slack_message(slack: SlackStandIn, title: str) -> str:
    """The ts of the incident message about ``title`` in #oncall, once posted."""
    found = [m for m in slack.messages("#oncall") if title in orjson.dumps(m).decode()]
    return str(found[0]["ts"]) if found else ""


def acked_update(slack: SlackStandIn, ts: str) -> bool:
    return any(
        str(c.args.get("ts")) == ts and "acknowledged" in orjson.dumps(c.args).decode().lower()
        for c in slack.calls_of("chat.update")
    )


def sign_in(browser: Any, server: Server, email: str) -> dict[str, Any]:
    """A new sign-in through the login page: its cookies, for other contexts."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    sync_api.expect(page).to_have_url(re.compile(r"/incidents$"))
    state: dict[str, Any] = context.storage_state()
    context.close()
    return state


def test_the_walk_from_sign_up_to_log_out(server: Server, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    expect = sync_api.expect
    page.goto(server.base + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    check_axe(page, "login")

    # sign-up
    page.get_by_role("link", name="Create a team").click()
    check_axe(page, "signup")
    page.get_by_label("Team name").fill("Acme")
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    # the set-up guide: a source, its URL and snippet, a test alert watched live
    expect(page).to_have_url(re.compile(r"/onboarding$"))
    check_axe(page, "onboarding")
    page.get_by_text("Any other tool (signed JSON)").click()
    page.get_by_role("button", name="Create integration").click()
    expect(page.get_by_role("button", name="Copy snippet")).to_be_visible()
    url = page.locator("#webhook-url").inner_text().strip()
    secret = page.locator("#created-secret").inner_text().strip()
    server.tenant_id = url.split("/v1/wh/")[1].split("/")[0]
    check_axe(page, "onboarding (integration created)")
    page.get_by_role("button", name="Send test alert").click()
    expect(page.get_by_role("status").first).to_contain_text("Test alert sent")
    page.evaluate("window.__stayed = true")
    expect(page.locator("#time-to-first")).to_have_text(re.compile(r"^\d+\.\d s$"), timeout=15_000)
    expect(page.locator("#progress")).to_contain_text("checkout latency high")
    assert page.evaluate("window.__stayed") is True  # it came in without a reload
    check_axe(page, "onboarding (first incident)")

    # Slack, from the guide (the stand-in answers auth.test)
    page.get_by_label("Bot token").fill(SLACK_TOKEN)
    page.get_by_label("Signing secret").fill("browser-signing-secret")
    page.get_by_label("Default channel").fill("#oncall")
    page.get_by_role("button", name="Connect Slack").click()
    expect(page.get_by_role("status").first).to_have_text(re.compile("Slack connected"))
    expect(page.locator(".progress-list")).to_have_attribute("data-complete", "1")
    page.get_by_role("link", name="Go to the incidents").click()
    expect(page).to_have_url(re.compile(r"/incidents$"))

    # a test alert: the list updates live, without a reload
    page.get_by_role("link", name="Incidents").click()
    page.evaluate("window.__stayed = true")
    page.wait_for_timeout(1500)  # the stream is open
    send_alert(server, url, secret, labels={"host": "db-1"})
    row = page.locator("#incidents tbody tr", has_text="db down")
    expect(row).to_be_visible(timeout=15_000)
    # a repeat: its timeline reason names the long fingerprint (phone screenshots)
    send_alert(server, url, secret, labels={"host": "db-1"})
    expect(page.locator("#live")).to_have_text(re.compile(r"^\d+ updated$"))
    assert page.evaluate("window.__stayed") is True  # the page was not reloaded
    expect(page.locator('[data-count="open"]')).to_have_text("2")  # and the test alert's
    check_axe(page, "incidents (live)")

    # keyboard: ? lists the shortcuts
    page.locator("body").press("?")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")

    # the incident, acknowledged
    row.get_by_role("link", name="db down").click()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    server.incident_path = page.url.removeprefix(server.base)
    expect(page.locator("svg.graph .node.root")).to_have_count(1)
    check_axe(page, "incident")
    posted = wait_for(lambda: slack_message(server.slack, "db down"), "the Slack post")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_have_text("Acknowledged.")
    expect(page.locator(".head .badge.status-acknowledged")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("Acknowledged by user:" + OWNER)
    wait_for(lambda: acked_update(server.slack, posted), "the Slack message's update")
    page.get_by_label("Add a note").fill("restarted db-1")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_role("status")).to_have_text("Note added.")
    expect(page.locator(".timeline")).to_contain_text("restarted db-1")

    # analytics renders a chart
    page.get_by_role("link", name="Analytics").click()
    expect(page.locator("svg.chart rect.bar").first).to_be_attached()
    page.get_by_role("link", name="30d").click()
    expect(page.locator("svg.chart")).to_be_visible()
    check_axe(page, "analytics")

    # a suggestion, accepted after its replay
    found = Suggestion(
        kind="tune",
        key="fp:disk",
        title="disk full on db fired 40 times in 7 days, never acknowledged",
        evidence={"fired": 40, "auto_resolved_quickly": 38, "acknowledged": 0},
        proposal={"action": "mute", "matchers": '{service="db"}', "duration_days": 7},
    )
    server.setup.store.save_suggestions(server.tenant_id, [found], datetime.now(UTC))
    page.get_by_role("link", name="Suggestions").click()
    check_axe(page, "suggestions")
    page.get_by_role("link", name=re.compile("What if")).click()
    server.suggestion_path = page.url.removeprefix(server.base)
    expect(page.get_by_role("columnheader", name="With the suggestion")).to_be_visible()
    check_axe(page, "suggestion replay")
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("status")).to_have_text("Accepted: the rule is in place.")

    # a silence
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Matchers").fill('{service="cache"}')
    page.get_by_label("Hours").fill("3")
    page.get_by_label("Comment").fill("cache migration")
    page.get_by_role("button", name="Preview matches").click()
    expect(page.get_by_role("heading", name=re.compile("In the last 7 days"))).to_be_visible()
    expect(page.locator("#preview-alerts")).to_have_text("0")
    check_axe(page, "silence preview")
    page.get_by_role("button", name="Create silence").click()
    expect(page.get_by_role("status")).to_have_text("Silence created.")
    expect(page.locator("#silences")).to_contain_text("cache migration")
    check_axe(page, "settings")

    # the later tests' session: a sign-in of its own, since logging out ends this one
    server.owner_state = sign_in(browser, server, OWNER)
    # log out
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(server.base + "/incidents")
    expect(page).to_have_url(re.compile(r"/login"))
    context.close()


def test_a_viewer_can_read_but_not_act(server: Server, browser: Any) -> None:
    if not server.incident_path:
        pytest.skip("needs the walk's incident")
    accounts = server.setup.store.accounts()
    user = accounts.create_user(VIEWER, hash_password(PASSWORD))
    accounts.add_member(server.tenant_id, user.id, "viewer")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    expect = sync_api.expect
    page.goto(server.base + "/login")
    page.get_by_label("Email").fill(VIEWER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/incidents$"))
    for path in (server.incident_path, "/settings", "/suggestions", "/incidents", "/onboarding"):
        page.goto(server.base + path)
        forms = page.locator('form[method="post"]')
        assert forms.count() == 1, path  # log out, nothing else
        expect(forms.get_by_role("button")).to_have_text("Log out")
    page.goto(server.base + server.incident_path)
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    context.close()


PAGES = [
    "/login",
    "/signup",
    "/incidents",
    "incident",
    "/analytics",
    "/suggestions",
    "suggestion",
    "/settings",
    "/onboarding",
    "silence-preview",
]


def test_screenshots_light_and_dark_at_desktop_and_phone_sizes(
    server: Server, browser: Any
) -> None:
    if server.owner_state is None:
        pytest.skip("needs the walk's session")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        for size, (width, height) in SIZES.items():
            signed_in = browser.new_context(
                viewport={"width": width, "height": height},
                color_scheme=scheme,
                storage_state=server.owner_state,
            )
            anonymous = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            for name in PAGES:
                path = {"incident": server.incident_path, "suggestion": server.suggestion_path}
                target = path.get(name, name)
                context = anonymous if name in ("/login", "/signup") else signed_in
                page = context.new_page()
                page.goto(server.base + (target if name != "silence-preview" else "/settings"))
                if name == "silence-preview":
                    page.get_by_label("Matchers").fill('{service="db"}')
                    page.get_by_role("button", name="Preview matches").click()
                    page.wait_for_load_state("networkidle")
                if scheme == "dark" and size == "desktop":
                    check_axe(page, f"{name} (dark)")
                if size == "phone":  # nothing wider than the phone
                    scroll = page.evaluate("document.documentElement.scrollWidth")
                    assert scroll <= width + 1, f"{name} scrolls sideways on a phone: {scroll}"
                label = name.strip("/") or "home"
                page.screenshot(path=str(SHOTS / f"{label}-{size}-{scheme}.png"), full_page=True)
                page.close()
            signed_in.close()
            anonymous.close()


def test_live_updates_keep_to_their_page_and_filters(server: Server, browser: Any) -> None:
    """An older page gets no newer incidents at its top; on the first page a new
    incident comes in at the top and pushes nothing out; a row that stops matching a
    filtered list leaves it (the next matching one takes its place)."""
    if server.owner_state is None:
        pytest.skip("needs the walk's session")
    secret = "browser-many-secret"
    made = server.setup.store.create_integration(server.tenant_id, "custom", "many", secret)
    url = f"{server.base}/v1/wh/{server.tenant_id}/custom/{made.id}"
    before = len(incident_ids(server))
    for n in range(52):
        send_alert(server, url, secret, title=f"svc-{n} down", service=f"svc-{n}")
    wait_for(lambda: len(incident_ids(server)) >= before + 52, "52 incidents")
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, storage_state=server.owner_state
    )
    page, other = context.new_page(), context.new_page()
    expect, rows = sync_api.expect, page.locator("#incidents tbody tr")

    page.goto(server.base + "/incidents")
    page.get_by_role("link", name=re.compile("Older incidents")).click()
    expect(page).to_have_url(re.compile("cursor="))
    shown = rows.count()
    page.wait_for_timeout(2500)  # the stream's first event, and a second
    assert rows.count() == shown and page.locator("#live").inner_text() == ""

    page.goto(server.base + "/incidents")
    expect(rows).to_have_count(50)
    page.wait_for_timeout(1500)  # the stream is open
    send_alert(server, url, secret, title="newest down", service="newest")
    expect(rows.first).to_contain_text("newest down", timeout=15_000)
    expect(rows).to_have_count(51)

    page.goto(server.base + "/incidents?status=open")
    first = rows.first.get_attribute("data-id")
    page.wait_for_timeout(1500)
    other.goto(f"{server.base}/incidents/{first}")
    other.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(f'#incidents tr[data-id="{first}"]')).to_have_count(0, timeout=10_000)
    expect(rows).to_have_count(50)  # the next open incident came up from page 2
    context.close()


def incident_ids(server: Server) -> list[str]:
    found = server.setup.store.list_incidents(server.tenant_id, IncidentFilter(), 200, None)
    return [i["id"] for i in found.items]

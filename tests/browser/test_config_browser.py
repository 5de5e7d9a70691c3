"""The configuration pages in a real headless Chromium against a real ``dd0c-alert
serve`` (``conftest``, shared with the other modules): an owner walks integrations
(renamed after an error), routes and inhibition rules (an error shown next to its
field, then fixed), topology, settings, team and
API keys; axe-core finds no serious or critical violation on any of them; screenshots
of each at desktop and phone sizes, light and dark, in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from .helpers import MARKS, PASSWORD, SHOTS, SIZES, Server, check_axe, sync_api

pytestmark = MARKS
OWNER = "config-owner@example.com"
CONFIG_PAGES = [
    "/settings/integrations",
    "/settings/routes",
    "/settings/inhibitions",
    "/settings/topology",
    "/settings/correlation",
    "/settings/team",
    "/settings/api-keys",
    "/settings/usage",
    "/settings/audit",
    "/settings/dead-letters",
]


def test_an_owner_configures_the_team_through_the_pages(server: Server, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    expect = sync_api.expect
    page.goto(server.base + "/signup")
    page.get_by_label("Team name").fill("Configured")
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/onboarding$"))  # the set-up guide, skipped here

    page.goto(server.base + "/settings")
    page.get_by_role("navigation", name="Configuration").get_by_role(
        "link", name="Integrations"
    ).click()
    expect(page.get_by_role("heading", name="No integration yet")).to_be_visible()
    check_axe(page, "integrations (empty)")
    page.get_by_label("Source").select_option("custom")
    page.get_by_label("Name").fill("shop")
    page.get_by_role("button", name="Create integration").click()
    expect(page.locator("#created-secret")).to_be_visible()
    page.get_by_role("button", name="Send test alert to shop").click()
    expect(page.get_by_role("status")).to_contain_text("Test alert sent")
    page.locator("summary", has_text="Rename").click()
    page.get_by_label("New name for shop").fill(" ")
    page.get_by_role("button", name="Rename shop").click()
    renamed = page.get_by_label("New name for shop")
    expect(renamed).to_have_attribute("aria-invalid", "true")  # its details are open again
    expect(page.locator(".field-error")).to_contain_text("at least 1 character")
    check_axe(page, "integrations (rename error)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "config-integrations-rename-error-desktop-light.png"))
    renamed.fill("storefront")
    page.get_by_role("button", name="Rename shop").click()
    expect(page.get_by_role("status")).to_have_text("Integration renamed.")
    expect(page.get_by_role("heading", name=re.compile("^storefront"))).to_be_visible()
    check_axe(page, "integrations")

    page.goto(server.base + "/settings/routes")
    page.get_by_label("Name", exact=True).fill("payments")
    page.get_by_label("Matchers").fill('{service="checkout"')
    page.get_by_label("Destinations").fill("slack #payments")
    page.get_by_role("button", name="Add route").click()
    matchers = page.get_by_label("Matchers")
    expect(matchers).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#matchers-error")).to_contain_text("matchers")
    check_axe(page, "routes (error)")
    matchers.fill('{service="checkout"}')
    page.get_by_label("After (minutes)").fill("15")
    page.get_by_label("Escalate to").fill("email sre@example.com")
    page.get_by_role("button", name="Add route").click()
    expect(page.get_by_role("status")).to_have_text("Route created.")
    expect(page.locator("ol.routes")).to_contain_text("after 15 min")

    page.goto(server.base + "/settings/inhibitions")
    expect(page.get_by_role("heading", name="No inhibition rule yet")).to_be_visible()
    page.get_by_label("Source matchers").fill('{alertname="NodeDown"}')
    page.get_by_label("Target matchers").fill('{severity=~"(?!critical).*"}')
    page.get_by_label("Equal labels").fill("node")
    page.get_by_role("button", name="Add rule").click()
    target = page.get_by_label("Target matchers")
    expect(target).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#target-error")).to_contain_text("RE2")
    check_axe(page, "inhibitions (error)")
    page.screenshot(path=str(SHOTS / "config-inhibitions-error-desktop-light.png"), full_page=True)
    target.fill('{severity=~"low|medium"}')
    page.get_by_role("button", name=re.compile("^Preview the last")).click()
    expect(page.get_by_role("heading", name=re.compile("would have inhibited"))).to_be_visible()
    expect(page.get_by_label("Target matchers")).to_have_value('{severity=~"low|medium"}')
    check_axe(page, "inhibitions (preview)")
    page.screenshot(
        path=str(SHOTS / "config-inhibitions-preview-desktop-light.png"), full_page=True
    )
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_have_text("Inhibition rule created.")
    page.get_by_role("link", name=re.compile("^Edit")).click()
    page.get_by_label("Equal labels").fill("node, cluster")
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("status")).to_have_text("Inhibition rule saved.")
    expect(page.locator("ul.items")).to_contain_text("cluster")
    check_axe(page, "inhibitions")

    page.goto(server.base + "/settings/topology")
    page.get_by_label("Service", exact=True).fill("checkout")
    page.get_by_label("Depends on", exact=True).fill("payments, db")
    page.get_by_role("button", name="Save dependencies").click()
    expect(page.get_by_role("status")).to_have_text("Dependencies saved.")
    expect(page.locator("svg.topology g.node")).to_have_count(3)
    check_axe(page, "topology")

    page.goto(server.base + "/settings/correlation")
    page.get_by_label("Correlation window (seconds)").fill("600")
    page.get_by_label(re.compile("^Strict")).check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved")
    check_axe(page, "correlation")

    page.goto(server.base + "/settings/team")
    page.get_by_label("Email").fill("teammate@example.com")
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation recorded")
    check_axe(page, "team")

    page.goto(server.base + "/settings/api-keys")
    page.get_by_label("Name").fill("deploy pipeline")
    page.get_by_label("Scope").select_option("write")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#created-key")).to_contain_text("dd0c_")
    check_axe(page, "api keys")

    for path in ("/settings/usage", "/settings/audit", "/settings/dead-letters"):
        page.goto(server.base + path)
        check_axe(page, path)
    expect(page.get_by_role("heading", name="No dead letters")).to_be_visible()
    page.goto(server.base + "/settings/audit")
    expect(page.locator("table")).to_contain_text("route.create")
    server.owner_state = context.storage_state()
    context.close()


def test_config_screenshots_light_and_dark_at_desktop_and_phone_sizes(
    server: Server, browser: Any
) -> None:
    if server.owner_state is None:
        pytest.skip("needs the walk's session")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        for size, (width, height) in SIZES.items():
            context = browser.new_context(
                viewport={"width": width, "height": height},
                color_scheme=scheme,
                storage_state=server.owner_state,
            )
            page = context.new_page()
            for path in CONFIG_PAGES:
                page.goto(server.base + path)
                if scheme == "dark" and size == "desktop":
                    check_axe(page, f"{path} (dark)")
                if size == "phone":  # nothing wider than the phone
                    scroll = page.evaluate("document.documentElement.scrollWidth")
                    assert scroll <= width + 1, f"{path} scrolls sideways on a phone: {scroll}"
                label = path.removeprefix("/settings/")
                page.screenshot(
                    path=str(SHOTS / f"config-{label}-{size}-{scheme}.png"), full_page=True
                )
            context.close()

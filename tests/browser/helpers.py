"""What the browser tests share besides their fixtures (``conftest``): the per-module
``Server`` view of the shared ``serve``, axe-core, and the screenshot sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dd0c_alert.pipeline.runtime import Runtime
from stand_ins.slack_api import SlackStandIn

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
#: Every browser test module: slow, and skipped without Debian's chromium.
MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SIZES = {"desktop": (1440, 900), "phone": (390, 844)}
PASSWORD = "correct horse battery staple"
SLACK_TOKEN = "xoxb-browser-test"


@dataclass
class Server:
    """One module's view of the shared server: the state its tests hand on to each
    other (a session, ids) stays in the module, each module signs up its own team."""

    base: str
    setup: Runtime  # the same database, for what the UI cannot do yet
    slack: SlackStandIn
    owner_state: dict[str, Any] | None = None
    tenant_id: str = ""
    incident_path: str = ""
    suggestion_path: str = ""


def check_axe(page: Any, where: str) -> None:
    """No serious or critical accessibility violation (axe-core's WCAG A/AA rules)."""
    # Evaluated, not added as a <script>: the pages' Content-Security-Policy refuses
    # inline scripts, as it should.
    page.evaluate(AXE.read_text() + "\n;true")
    result = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations'], runOnly: "
        "{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{where}: " + "; ".join(bad)

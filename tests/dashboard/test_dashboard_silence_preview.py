"""The silence form's preview: what the matchers would have matched in the last days,
matched like the worker matches, bounded, refused without the token or the role."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dashboard_helpers import SECRET, add_user, csrf, log_in, post_alert, post_forms, sign_up
from fastapi.testclient import TestClient

from dd0c_alert.config import Settings
from dd0c_alert.correlation.rules import parse_matchers
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import AlertFilter, Page
from dd0c_alert.web.dashboard import silence_preview


@pytest.fixture
def settings(settings: Settings) -> Settings:  # extends the root conftest's
    return settings.model_copy(update={"signup_enabled": True})


def _preview(client: TestClient, matchers: str) -> tuple[int, str]:
    answer = client.post(
        "/settings/silences/preview",
        data={"csrf_token": csrf(client), "matchers": matchers, "hours": "3", "comment": "x"},
    )
    return answer.status_code, answer.text


def test_the_preview_counts_and_shows_what_would_have_matched(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    assert "/settings/silences/preview" in client.get("/settings").text
    integration = runtime.store.create_integration(tenant_id, "custom", "c", SECRET).id
    incident = post_alert(client, runtime, tenant_id, integration, labels={"host": "db-1"})
    status, html = _preview(client, '{service="db", host=~"db-[0-9]+"}')
    assert status == 200
    assert '<span class="big" id="preview-alerts">1</span> alert<' in html
    assert '<span class="big" id="preview-incidents">1</span> incident<' in html
    assert f'href="/incidents/{incident}"' in html and "db down" in html
    assert 'value="3"' in html and "/settings/silences" in post_forms(html)  # create from here
    status, html = _preview(client, '{severity="info"}')  # canonical severity, no hit
    assert '<span class="big" id="preview-alerts">0</span>' in html and "Nothing:" in html
    status, html = _preview(client, '{host=~"(a+)+$"}')  # RE2: no backtracking blow-up
    assert status == 200 and "Nothing:" in html


def test_bad_matchers_are_refused_with_the_reason(client: TestClient) -> None:
    sign_up(client)
    for text, reason in (
        ("{", "Matchers:"),
        ("{}", "at least one matcher"),
        ('{a=~"(?=x)"}', "RE2"),
    ):
        status, html = _preview(client, text)
        assert status == 422 and reason in html, text


def test_the_preview_needs_the_token_and_a_writer(client: TestClient, runtime: Runtime) -> None:
    tenant_id = sign_up(client)
    assert client.post("/settings/silences/preview", data={"matchers": "{a=b}"}).status_code == 403
    add_user(runtime, tenant_id, "viewer@example.com", "viewer")
    client.cookies.clear()
    log_in(client, "viewer@example.com")
    assert _preview(client, '{service="db"}')[0] == 403
    assert "Preview matches" not in client.get("/settings").text


class _Many:
    """A store of more alerts than the preview reads, all matching."""

    def __init__(self, total: int) -> None:
        self.total, self.read = total, 0

    def list_alerts(self, tenant_id: str, f: AlertFilter, limit: int, cursor: str | None) -> Page:
        start = int(cursor or 0)
        items = [
            {"id": str(n), "service": "db", "severity": "low", "incident_id": f"i{n % 7}"}
            for n in range(start, min(start + limit, self.total))
        ]
        self.read += len(items)
        end = start + len(items)
        return Page(items=items, next_cursor=str(end) if end < self.total else None)


def test_the_scan_stops_at_the_cap_and_says_so() -> None:
    matchers = parse_matchers('{service="db"}')
    many = _Many(silence_preview.SCAN_CAP + 10)
    found = silence_preview.preview(many, "t", matchers, datetime.now(UTC))  # type: ignore[arg-type]
    assert (found.scanned, many.read, found.stopped_early) == (silence_preview.SCAN_CAP,) * 2 + (
        True,
    )
    assert found.alerts == silence_preview.SCAN_CAP and len(found.incidents) == 7
    assert len(found.examples) == silence_preview.EXAMPLES
    exact = _Many(silence_preview.SCAN_CAP)
    done = silence_preview.preview(exact, "t", matchers, datetime.now(UTC))  # type: ignore[arg-type]
    assert not done.stopped_early

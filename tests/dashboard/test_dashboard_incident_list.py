"""The incident list's pages and its live stream, without a browser: an older page
streams its own rows only, rows that stop matching the filters leave the list, and a
broken page link answers the dashboard's 400 page."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from dashboard_helpers import add_user, csrf, log_in, post_alert, sign_up
from fastapi.testclient import TestClient

from conftest import tenant_connection
from dd0c_alert.config import Settings
from dd0c_alert.domain.ids import new_id
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import schema as t
from dd0c_alert.web.dashboard import incident_pages


@pytest.fixture
def settings(settings: Settings) -> Settings:  # extends the root conftest's
    return settings.model_copy(update={"signup_enabled": True})


@pytest.fixture(autouse=True)
def short_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream ends after a few seconds here, so a missing event fails the test
    instead of hanging it for the stream's five minutes."""
    monkeypatch.setattr(incident_pages, "STREAM_SECONDS", 6.0)


def copies(settings: Settings, tenant_id: str, incident_id: str, count: int) -> list[str]:
    """``count`` more incidents like ``incident_id``, written as rows (posting that
    many alerts costs seconds); their ids, newest first."""
    with tenant_connection(settings, tenant_id) as conn:
        row = conn.execute(sa.select(t.incidents).where(t.incidents.c.id == incident_id)).one()
        start = int(time.time() * 1000)
        ids = [new_id(start + n) for n in range(count)]
        conn.execute(sa.insert(t.incidents), [{**row._mapping, "id": i} for i in ids])
    return ids[::-1]


def events(client: TestClient, path: str, wanted: int) -> list[dict[str, Any]]:
    """The first ``wanted`` ``rows`` events of the stream at ``path`` (fewer when it
    ends first)."""
    found: list[dict[str, Any]] = []
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                found.append(orjson.loads(line.removeprefix("data: ")))
                if len(found) == wanted:
                    break
    return found


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


def test_an_older_page_streams_its_own_rows_not_the_first_pages(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    tenant_id = sign_up(client)
    first = post_alert(client, runtime, tenant_id)
    copies(settings, tenant_id, first, 59)
    newest = client.get("/incidents").text
    link = re.search(r'href="/incidents\?([^"]*cursor=[^"]+)"', newest)
    assert link is not None
    query = link.group(1).replace("&amp;", "&")
    older = client.get(f"/incidents?{query}").text
    assert len(listed(older)) == 10 and "data-older" in older
    assert "data-older" not in newest
    assert f'data-stream="/incidents/stream?{query}"' in older.replace("&amp;", "&")
    [event] = events(client, f"/incidents/stream?{query}", 1)
    assert listed(event["html"]) == listed(older) == event["ids"]
    assert not set(listed(event["html"])) & set(listed(newest))
    assert event["floor"] == ""  # nothing older: a row that leaves stopped matching
    [event] = events(client, "/incidents/stream", 1)
    assert event["ids"] == listed(newest) and event["floor"] == listed(newest)[-1]


def test_a_row_that_stops_matching_the_filter_leaves_the_list(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    tenant_id = sign_up(client)
    first = post_alert(client, runtime, tenant_id)
    other = copies(settings, tenant_id, first, 1)[0]
    with client.stream("GET", "/incidents/stream?status=open") as response:
        lines = response.iter_lines()
        shown = next(orjson.loads(x[6:]) for x in lines if x.startswith("data: "))
        assert sorted(shown["ids"]) == sorted([first, other])
        runtime.store.incident_action(tenant_id, other, "ack", 60, actor="user:someone")
        after = next(orjson.loads(x[6:]) for x in lines if x.startswith("data: "))
    assert after["ids"] == [first] and after["floor"] == ""
    assert after["counts"]["acknowledged"] == "1"


def test_a_broken_page_link_answers_the_dashboards_400_page(client: TestClient) -> None:
    sign_up(client)
    for path in ("/incidents?cursor=garbage", "/incidents/stream?cursor=garbage"):
        broken = client.get(path)
        assert broken.status_code == 400, path
        assert broken.headers["content-type"].startswith("text/html")
        assert "This link to older incidents is broken" in broken.text
        assert "default-src 'self'" in broken.headers["content-security-policy"]


@pytest.mark.parametrize("ended_by", ["removal", "logout"])
def test_the_stream_stops_when_its_viewer_is_removed_or_logs_out(
    client: TestClient, runtime: Runtime, ended_by: str
) -> None:
    """The stream checked the viewer once, when it began, and then sent the team's
    incidents for five minutes to a member removed (or logged out) meanwhile."""
    tenant_id = sign_up(client)
    incident = post_alert(client, runtime, tenant_id)
    add_user(runtime, tenant_id, "member@example.com", "member")
    assert log_in(client, "member@example.com").status_code == 303
    member = runtime.store.accounts().user_by_email("member@example.com")
    assert member is not None
    key, _ = runtime.store.accounts().create_api_key(tenant_id, "owner-key", "admin")
    started = time.monotonic()
    with client.stream("GET", "/incidents/stream") as response:
        lines = response.iter_lines()
        assert next(x for x in lines if x.startswith("data: "))
        if ended_by == "removal":
            gone = client.delete(
                f"/v1/users/{member.id}", headers={"Authorization": f"Bearer {key}"}
            )
            assert gone.status_code == 204
        else:
            out = client.post("/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
            assert out.status_code == 303
        runtime.store.incident_action(tenant_id, incident, "ack", 60, actor="user:owner")
        later = [x for x in lines if x.startswith("data: ")]
    assert later == []
    assert time.monotonic() - started < incident_pages.STREAM_SECONDS

"""The dashboard without a browser: sign-in, redirects, CSRF, roles, and each page's
content, through the real app on the real store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from dashboard_helpers import (
    PASSWORD,
    SECRET,
    add_suggestion,
    add_user,
    csrf,
    log_in,
    post_alert,
    post_forms,
    sign_up,
)
from fastapi.testclient import TestClient

from conftest import tenant_connection
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.ports import IncidentFilter
from dd0c_alert.web.app import create_app
from dd0c_alert.web.dashboard.session import REFRESH_COOKIE
from webhook_helpers import auth_headers


@pytest.fixture
def settings(settings: Settings) -> Settings:  # extends the root conftest's
    """Sign-up on in both storage modes (off by default in production mode)."""
    return settings.model_copy(update={"signup_enabled": True})


PAGES = ["/incidents", "/incidents/abc", "/analytics", "/suggestions", "/settings"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


def test_home_redirects_to_login_then_to_the_incidents(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    sign_up(client)
    assert client.get("/", follow_redirects=False).headers["location"] == "/incidents"


def test_login_and_signup_forms_have_the_labels_tools_rely_on(client: TestClient) -> None:
    login = client.get("/login").text
    assert '<label for="email">Email</label>' in login
    assert '<label for="password">Password</label>' in login
    signup = client.get("/signup").text
    assert '<label for="team_name">Team name</label>' in signup


def test_session_cookies_are_http_only_and_lax(client: TestClient) -> None:
    response = client.post(
        "/signup",
        data={
            "csrf_token": csrf(client),
            "email": "o@example.com",
            "password": PASSWORD,
            "team_name": "Acme",
        },
        follow_redirects=False,
    )
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("dd0c_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session


def test_session_cookies_are_secure_when_the_public_url_is_https(settings: Settings) -> None:
    """Behind the TLS proxy the app is reached over plain http: the public URL, not
    the request's scheme, says the cookies may only travel over https."""
    public = settings.model_copy(update={"public_url": "https://alerts.example.com"})
    with TestClient(create_app(build_runtime(public))) as client:
        token = "a-csrf-token-of-this-browser"
        response = client.post(
            "/signup",
            data={
                "csrf_token": token,
                "email": "o@example.com",
                "password": PASSWORD,
                "team_name": "Acme",
            },
            headers={"Cookie": f"dd0c_csrf={token}"},  # a Secure cookie: sent by hand
            follow_redirects=False,
        )
    assert response.status_code == 303, response.text
    cookies = response.headers.get_list("set-cookie")
    names = {c.split("=", 1)[0] for c in cookies}
    assert {"dd0c_session", "dd0c_refresh", "dd0c_csrf"} <= names
    for cookie in cookies:
        assert "; Secure" in cookie, cookie.split("=", 1)[0]


def test_login_refuses_a_wrong_password_and_accepts_the_right_one(client: TestClient) -> None:
    sign_up(client, "o@example.com")
    client.cookies.clear()
    assert log_in(client, "o@example.com", "wrong password 123").status_code == 401
    response = log_in(client, "o@example.com")
    assert (response.status_code, response.headers["location"]) == (303, "/incidents")
    assert client.get("/incidents").status_code == 200


def test_login_goes_back_to_the_page_asked_for_but_never_off_site(client: TestClient) -> None:
    sign_up(client, "o@example.com")
    for given, expected in (("/analytics", "/analytics"), ("//evil.example", "/incidents")):
        response = client.post(
            "/login",
            data={
                "csrf_token": csrf(client),
                "email": "o@example.com",
                "password": PASSWORD,
                "next": given,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == expected


def test_an_expired_session_is_renewed_by_the_refresh_cookie(client: TestClient) -> None:
    sign_up(client)
    old_refresh = client.cookies.get(REFRESH_COOKIE)
    client.cookies.set("dd0c_session", "expired.or.garbage")
    response = client.get("/incidents", follow_redirects=False)
    assert response.status_code == 200
    assert client.cookies.get(REFRESH_COOKIE) != old_refresh  # rotated


@pytest.mark.parametrize(
    "path", ["/incidents/stream", "/onboarding/progress", "/onboarding/slack-manifest.json"]
)
def test_a_renewal_by_a_stream_or_a_poll_hands_the_browser_its_new_cookies(
    client: TestClient, path: str
) -> None:
    """The live list's stream and the guide's poll run on when the access cookie
    has expired: the refresh token they spend must come back to the browser, or its
    next request presents the spent one and the sign-in is revoked as stolen."""
    sign_up(client)
    old_refresh = client.cookies.get(REFRESH_COOKIE)
    client.cookies.delete("dd0c_session")  # expired: the browser dropped it
    with client.stream("GET", path) as response:
        assert response.status_code == 200
    assert client.cookies.get(REFRESH_COOKIE) not in (None, old_refresh)
    client.cookies.delete("dd0c_session")
    assert client.get("/incidents", follow_redirects=False).status_code == 200


def test_logout_revokes_the_refresh_token_and_the_session_cookie(client: TestClient) -> None:
    sign_up(client)
    refresh = client.cookies.get(REFRESH_COOKIE)
    access = client.cookies.get("dd0c_session")
    response = client.post("/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert response.headers["location"] == "/login"
    client.cookies.clear()
    client.cookies.set(REFRESH_COOKIE, refresh or "")
    assert client.get("/incidents", follow_redirects=False).status_code == 303
    client.cookies.clear()  # a copy of the access cookie, replayed after the logout
    client.cookies.set("dd0c_session", access or "")
    assert client.get("/incidents", follow_redirects=False).status_code == 303
    answer = client.get("/v1/incidents", headers={"Authorization": f"Bearer {access}"})
    assert answer.status_code == 401


def test_forms_without_the_csrf_token_or_from_another_site_are_refused(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    incident = post_alert(client, runtime, tenant_id)
    url = f"/incidents/{incident}/ack"
    assert client.post(url, data={}).status_code == 403
    assert client.post(url, data={"csrf_token": "not-the-cookie"}).status_code == 403
    foreign = client.post(
        url, data={"csrf_token": csrf(client)}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    assert client.get(f"/incidents/{incident}").text.count("badge status-open") == 1
    ok = client.post(
        url,
        data={"csrf_token": csrf(client)},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert (ok.status_code, ok.headers["location"]) == (303, f"/incidents/{incident}?msg=ack")
    assert "badge status-acknowledged" in client.get(f"/incidents/{incident}").text


def test_the_incident_list_and_detail_show_the_incident(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    empty = client.get("/incidents").text
    assert "No incidents yet" in empty and "Create an integration" in empty
    incident = post_alert(client, runtime, tenant_id)
    listed = client.get("/incidents").text
    assert f'<a href="/incidents/{incident}">db down</a>' in listed
    assert 'datetime="' in listed
    assert "No incidents yet" not in listed
    detail = client.get(f"/incidents/{incident}").text
    assert "Opened the incident" in detail  # the timeline, in words
    assert '/raw">raw payload' in detail
    # Repeats are counted on the alert, not the timeline: when it was last heard of.
    assert '<td data-label="Last seen"><time datetime="' in detail
    assert 'class="node root"' in detail  # the service graph
    assert client.get("/incidents?status=resolved").text.count("<tr data-id") == 0
    assert client.get("/incidents?q=nothing-like-it").text.count("<tr data-id") == 0
    assert client.get("/incidents?q=DB").text.count("<tr data-id") == 1


def test_only_web_links_from_payloads_are_clickable(
    client: TestClient, runtime: Runtime, settings: Settings
) -> None:
    """A sender's ``javascript:`` link (an alert's or a deploy's) is never an href,
    not even when a row stored before providers filtered them holds one; the pages
    forbid inline script and framing besides."""
    tenant_id = sign_up(client)
    integration = runtime.store.create_integration(tenant_id, "custom", "custom", SECRET).id
    deploy = orjson.dumps(
        {"kind": "deploy", "service": "db", "version": "v2", "url": "javascript:alert(3)"}
    )
    headers = {"Content-Type": "application/json", **auth_headers("custom", deploy, SECRET, {})}
    response = client.post(
        f"/v1/wh/{tenant_id}/custom/{integration}", content=deploy, headers=headers
    )
    assert response.status_code == 202
    links = {
        "runbook": "javascript:alert(1)",
        "dashboard": "https://grafana.example/d/1",
        "tab": "\tJaVaScRiPt:alert(2)",
        "data": "data:text/html,<script>alert(4)</script>",
    }
    incident = post_alert(client, runtime, tenant_id, integration, links=links)
    response = client.get(f"/incidents/{incident}")
    page = response.text
    assert "v2" in page  # the deploy is shown, without its link
    assert 'href="https://grafana.example/d/1"' in page
    assert "javascript" not in page.lower() and "data:text" not in page
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    with tenant_connection(settings, tenant_id) as conn:  # as an older version stored it
        conn.execute(
            sa.update(t.alerts).values(links={"runbook": "javascript:alert(5)"}),
        )
        conn.execute(sa.update(t.deploys).values(url="javascript:alert(6)"))
    page = client.get(f"/incidents/{incident}").text
    assert "v2" in page and "javascript" not in page.lower()


def test_the_stream_sends_rows_as_html(client: TestClient, runtime: Runtime) -> None:
    tenant_id = sign_up(client)
    incident = post_alert(client, runtime, tenant_id)
    with client.stream("GET", "/incidents/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                assert f'data-id=\\"{incident}\\"' in line
                break


def test_a_viewer_sees_no_action_forms_and_may_not_act(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    incident = post_alert(client, runtime, tenant_id)
    add_suggestion(runtime, tenant_id)
    add_user(runtime, tenant_id, "viewer@example.com", "viewer")
    client.cookies.clear()
    assert log_in(client, "viewer@example.com").status_code == 303
    for path in (f"/incidents/{incident}", "/settings", "/suggestions", "/incidents"):
        response = client.get(path)
        assert response.status_code == 200
        assert post_forms(response.text) == ["/logout"], path
    assert "can read the settings but not change them" in client.get("/settings").text
    refused = client.post(f"/incidents/{incident}/ack", data={"csrf_token": csrf(client)})
    assert refused.status_code == 403
    assert "Not allowed" in refused.text


def test_a_suggestion_shows_its_replay_then_is_accepted(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    post_alert(client, runtime, tenant_id)
    suggestion = add_suggestion(runtime, tenant_id)
    listed = client.get("/suggestions").text
    assert "fired" in listed and f"/suggestions/{suggestion}" in listed
    what_if = client.get(f"/suggestions/{suggestion}").text
    assert "What happened" in what_if and "With the suggestion" in what_if
    assert f"/suggestions/{suggestion}/accept" in post_forms(what_if)
    response = client.post(f"/suggestions/{suggestion}/accept", data={"csrf_token": csrf(client)})
    assert "Accepted" in response.text
    assert "fingerprint=&#34;disk&#34;" in client.get("/settings").text  # its silence


def test_silences_are_created_and_checked(client: TestClient) -> None:
    sign_up(client)
    bad = client.post(
        "/settings/silences", data={"csrf_token": csrf(client), "matchers": "{", "hours": "2"}
    )
    assert bad.status_code == 422 and "Silence:" in bad.text
    good = client.post(
        "/settings/silences",
        data={
            "csrf_token": csrf(client),
            "matchers": '{service="db"}',
            "hours": "2",
            "comment": "maintenance",
        },
    )
    assert good.status_code == 200 and "Silence created." in good.text
    assert "maintenance" in good.text


def test_a_silence_running_long_is_extended_by_two_hours(client: TestClient) -> None:
    sign_up(client)
    form = {"matchers": '{service="db"}', "hours": "1", "comment": "maintenance"}
    made = client.post("/settings/silences", data={"csrf_token": csrf(client), **form})
    [silence_id] = re.findall(r'action="/settings/silences/([^/"]+)/extend"', made.text)
    before = datetime.now(UTC)
    extended = client.post(
        f"/settings/silences/{silence_id}/extend", data={"csrf_token": csrf(client)}
    )
    assert "Silence extended by 2 hours." in extended.text
    [silence] = client.get("/v1/silences").json()["items"]
    ends = datetime.fromisoformat(silence["ends_at"])
    assert before + timedelta(hours=2, minutes=59) < ends < before + timedelta(hours=3, minutes=1)
    assert (silence["id"], silence["comment"]) == (silence_id, "maintenance")


def test_a_refused_silence_keeps_what_was_typed(client: TestClient) -> None:
    sign_up(client)
    typed = {"matchers": '{service="db"', "hours": "5", "comment": "db maintenance"}
    bad = client.post("/settings/silences", data={"csrf_token": csrf(client), **typed})
    assert bad.status_code == 422 and "Silence:" in bad.text
    assert 'value="{service=&#34;db&#34;"' in bad.text
    assert 'value="5"' in bad.text and 'value="db maintenance"' in bad.text


def test_silence_hours_out_of_bounds_are_a_form_error(client: TestClient) -> None:
    """float() reads "inf", "nan" and 1e30, which timedelta refuses with an
    OverflowError (a 500); "abc" gave Python's own message."""
    sign_up(client)
    for hours in ("inf", "-inf", "1e30", "nan", "abc", "", "0", "8761", "-1"):
        form = {"csrf_token": csrf(client), "matchers": '{service="db"}', "hours": hours}
        refused = client.post("/settings/silences", data=form)
        assert refused.status_code == 422, hours
        assert "Silence: hours must be a number from 0.1 to 8760" in refused.text, hours
    assert (
        "Silence created." in client.post("/settings/silences", data=form | {"hours": "0.1"}).text
    )


def test_an_integration_created_in_settings_shows_its_secret_once(client: TestClient) -> None:
    sign_up(client)
    created = client.post(
        "/settings/integrations", data={"csrf_token": csrf(client), "provider": "alertmanager"}
    )
    assert created.status_code == 200 and "shown once" in created.text
    assert 'id="created-secret"' not in client.get("/settings").text


def test_analytics_draws_an_svg_chart(client: TestClient, runtime: Runtime) -> None:
    tenant_id = sign_up(client)
    post_alert(client, runtime, tenant_id, started_at=datetime.now(UTC).isoformat())
    for window in ("7d", "30d", "90d"):
        html = client.get(f"/analytics?window={window}").text
        assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart"' in html
    assert ">db</a>" in client.get("/analytics").text


def test_analytics_noisiest_alerts_stay_inside_the_window(
    client: TestClient, runtime: Runtime
) -> None:
    """The page's window is the API's (today and the six UTC days before): an alert
    just before its first midnight is in no figure, its noisiest alerts included (they
    read the whole day before the window)."""
    tenant_id = sign_up(client)
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first -= timedelta(days=6)
    integration = runtime.store.create_integration(tenant_id, "custom", "custom", SECRET).id
    for title, at in (("before", first - timedelta(minutes=30)), ("inside", first)):
        post_alert(client, runtime, tenant_id, integration, title=title, started_at=at.isoformat())
    deadline = time.monotonic() + 20
    while len(runtime.store.list_incidents(tenant_id, IncidentFilter(), 10, None).items) < 2:
        assert time.monotonic() < deadline, "the second alert was not correlated"
        time.sleep(0.05)
    html = client.get("/analytics?window=7d").text
    noisiest = html[html.index('id="noisy-h"') : html.index('id="flap-h"')]
    assert "inside" in noisiest and "before" not in noisiest
    assert '<span class="big">1</span> alerts received' in html


def test_the_tenant_switcher_moves_the_session(client: TestClient, runtime: Runtime) -> None:
    first = sign_up(client, "o@example.com", "Acme")
    other = runtime.store.create_tenant("Globex")
    user = runtime.store.accounts().user_by_email("o@example.com")
    assert user is not None
    runtime.store.accounts().add_member(other.id, user.id, "member")
    html = client.get("/incidents").text
    assert 'name="tenant_id"' in html and "Globex" in html
    client.post("/switch", data={"csrf_token": csrf(client), "tenant_id": other.id})
    assert '<span class="role">member</span>' in client.get("/incidents").text
    client.post("/switch", data={"csrf_token": csrf(client), "tenant_id": first})
    assert '<span class="role">owner</span>' in client.get("/incidents").text


def test_api_errors_stay_json_and_page_errors_are_html(client: TestClient) -> None:
    sign_up(client)
    assert client.get("/v1/incidents/nope").json()["error"] == "not_found"
    page = client.get("/incidents/nope")
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text


#: Dashboard pages anyone may open.
OPEN_PAGES = {"/", "/login", "/signup", "/invite", "/reset", "/reset-request"}


def _flat(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from _flat(included.routes) if included is not None else [route]


def _dashboard_routes(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for route in _flat(client.app.routes):  # type: ignore[attr-defined]
        endpoint = getattr(route, "endpoint", None)
        if getattr(endpoint, "__module__", "").startswith("dd0c_alert.web.dashboard"):
            for method in sorted(route.methods - {"HEAD"}):
                found.append((method, route.path.replace("{", "").replace("}", "")))
    return found


def test_every_dashboard_route_needs_a_session_or_the_csrf_token(client: TestClient) -> None:
    """Generated from the routes: without a session, pages redirect to the login page;
    forms without the CSRF token are refused, and with it still need a session."""
    routes = _dashboard_routes(client)
    assert len(routes) > 15
    for method, path in routes:
        if method == "GET":
            answer = client.get(path, follow_redirects=False)
            if path in OPEN_PAGES:
                assert answer.status_code in (200, 303), path
            else:
                assert answer.status_code == 303, path
                assert answer.headers["location"].startswith("/login"), path
            continue
        assert client.post(path, data={}).status_code == 403, path
        answer = client.post(path, data={"csrf_token": csrf(client)}, follow_redirects=False)
        if path in OPEN_PAGES:
            assert answer.status_code != 303 or answer.headers["location"] != "/incidents"
        else:
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login"), path


def test_password_reset_through_the_pages(client: TestClient, runtime: Runtime) -> None:
    sign_up(client, "o@example.com")
    client.cookies.clear()
    asked = client.post(
        "/reset-request", data={"csrf_token": csrf(client), "email": "o@example.com"}
    )
    assert "a link to set a new password is on its way" in asked.text
    user = runtime.store.accounts().user_by_email("o@example.com")
    assert user is not None
    token = runtime.store.accounts().create_reset(user.id, timedelta(hours=1))
    assert 'name="token"' in client.get(f"/reset?token={token}").text
    weak = client.post(
        "/reset", data={"csrf_token": csrf(client), "token": token, "password": "short"}
    )
    assert weak.status_code == 422 and "Password:" in weak.text
    done = client.post(
        "/reset",
        data={"csrf_token": csrf(client), "token": token, "password": "a new long passphrase"},
    )
    assert "Your password is changed" in done.text
    assert log_in(client, "o@example.com", "a new long passphrase").status_code == 303
    again = client.post(
        "/reset", data={"csrf_token": csrf(client), "token": token, "password": "another long one!"}
    )
    assert again.status_code == 400


def test_an_invitation_link_signs_a_new_user_in(client: TestClient, runtime: Runtime) -> None:
    tenant_id = sign_up(client, "o@example.com")
    token, _ = runtime.store.accounts().create_invitation(
        tenant_id, "new@example.com", "member", "user:o@example.com", timedelta(days=1)
    )
    client.cookies.clear()
    assert 'name="token"' in client.get(f"/invite?token={token}").text
    joined = client.post(
        "/invite",
        data={"csrf_token": csrf(client), "token": token, "password": PASSWORD},
        follow_redirects=False,
    )
    assert joined.headers["location"] == "/incidents"
    assert '<span class="role">member</span>' in client.get("/incidents").text


def test_an_invitation_for_an_existing_account_needs_its_password(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client, "o@example.com")
    add_user(runtime, runtime.store.create_tenant("Other").id, "known@example.com", "owner")
    token, _ = runtime.store.accounts().create_invitation(
        tenant_id, "known@example.com", "viewer", "user:o@example.com", timedelta(days=1)
    )
    client.cookies.clear()
    joined = client.post("/invite", data={"csrf_token": csrf(client), "token": token})
    assert "log in with your existing password" in joined.text
    assert client.get("/incidents", follow_redirects=False).status_code == 303


def test_unknown_paths_answer_html_to_browsers_and_json_to_the_rest(client: TestClient) -> None:
    assert client.get("/nothing-here").json()["error"] == "not_found"
    page = client.get("/nothing-here", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text

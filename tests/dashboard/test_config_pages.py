"""The configuration pages without a browser: integrations, routes, topology,
correlation settings, team, API keys, usage, audit log and dead letters, through the
real app on the real store: each action for a role allowed to, refused for a viewer,
refused without its CSRF token, and written to the audit log."""

from __future__ import annotations

import html as html_text
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from dashboard_helpers import (
    add_suggestion,
    add_user,
    csrf,
    log_in,
    post_alert,
    post_forms,
    sign_up,
)
from fastapi.testclient import TestClient

from conftest import backend_overrides, drain, tenant_connection
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import schema
from dd0c_alert.storage.rows import month_of
from dd0c_alert.web import passwords
from dd0c_alert.web.app import create_app
from dd0c_alert.web.dashboard.render import PageRoute
from stand_ins.slack_api import SlackStandIn
from webhook_helpers import auth_headers

pytestmark = pytest.mark.both_modes


@dataclass(frozen=True)
class Shared:
    settings: Settings
    runtime: Runtime
    client: TestClient


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One app for the module (a runtime costs a second to build): each test signs up
    a team of its own, and tenants see nothing of each other."""
    base = Settings(
        data_dir=tmp_path_factory.mktemp("config") / "data",
        worker_poll_seconds=0.02,
        secret_key="",
        signup_enabled=True,
    )
    settings = base.model_copy(update=backend_overrides())
    runtime = build_runtime(settings)
    with TestClient(create_app(runtime)) as client:
        yield Shared(settings, runtime, client)


@pytest.fixture
def runtime(shared: Shared) -> Runtime:
    return shared.runtime


@pytest.fixture
def client(shared: Shared) -> TestClient:
    shared.client.cookies.clear()
    return shared.client


@dataclass(frozen=True)
class Team:
    id: str
    tag: str

    def email(self, who: str) -> str:
        return f"{who}-{self.tag}@example.com"


@pytest.fixture
def team(client: TestClient) -> Team:
    """A new team, its owner signed in."""
    tag = uuid4().hex[:10]
    return Team(sign_up(client, f"owner-{tag}@example.com", f"Team {tag}"), tag)


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests sign in a dozen times: argon2id with its smallest cost (the hash
    records its parameters, so verifying is as cheap) instead of half a second each."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


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


def post(client: TestClient, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf(client), **data})


def audit_actions(client: TestClient) -> list[str]:
    html = client.get("/settings/audit").text
    return re.findall(r'data-label="Action"><code>([a-z_.]+)</code>', html)


def field_error(html: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" id="{name}-error">([^<]*)</p>', html)
    return html_text.unescape(found.group(1)) if found else ""


def test_each_page_shows_its_empty_state_with_the_next_step(client: TestClient, team: Team) -> None:
    texts = {
        "/settings/integrations": "No integration yet",
        "/settings/routes": "No route yet",
        "/settings/inhibitions": "No inhibition rule yet",
        "/settings/topology": "No dependencies declared",
        "/settings/api-keys": "No API key yet",
        "/settings/dead-letters": "No dead letters",
        "/settings/audit": "Nothing recorded yet",
        "/settings/team": "Invite a teammate below",
        "/settings/usage": "No monthly quota",
        "/settings/correlation": "Save settings",
    }
    for path in CONFIG_PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        assert texts[path] in response.text, path
        assert 'aria-label="Configuration"' in response.text, path


def test_pages_answered_to_a_form_show_the_team_in_the_header(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    """The header's team name (or switcher) comes from the user's teams, which only
    the pages read by GET loaded: a page a form answered with lacked it."""
    incident = post_alert(client, runtime, team.id)
    answers = [
        post(client, "/settings/correlation", correlation_window_seconds="5"),
        post(client, "/settings/topology", service="", depends_on="db"),
        post(client, "/settings/routes/new", name="x"),
        post(client, "/settings/api-keys/new", name="ci", scope="read", expires_in_days="30"),
        post(client, "/settings/team/invite", email="not-an-address", role="member"),
        post(client, "/onboarding/integration", provider="custom"),
        post(client, "/settings/integrations", provider="alertmanager"),
        post(client, "/settings/silences", matchers="{", hours="2"),
        post(client, f"/incidents/{incident}/note", text=""),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201, 422), answer.url
        assert f'<span class="team">Team {team.tag}</span>' in answer.text, answer.url


def test_an_address_a_page_cannot_read_answers_the_dashboards_400_page(
    client: TestClient, team: Team
) -> None:
    bad = client.get("/settings/topology?page=abc")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")
    assert "This address holds a value the page cannot read (page: " in bad.text
    assert "default-src 'self'" in bad.headers["content-security-policy"]
    assert client.get("/settings/topology?page=2").status_code == 200
    for route in client.app.routes:  # type: ignore[attr-defined]
        module = getattr(getattr(route, "endpoint", None), "__module__", "")
        if module.startswith("dd0c_alert.web.dashboard"):  # every page answers so
            assert isinstance(route, PageRoute), route.path


def test_an_integration_is_created_tested_rotated_disabled_and_deleted(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    tenant_id = team.id
    bad = post(client, "/settings/integrations/new", provider="nagios")
    assert bad.status_code == 422 and "Integration not created: source" in bad.text
    created = post(client, "/settings/integrations/new", provider="custom", name="shop")
    secret = re.search(r'id="created-secret">([^<]+)<', created.text)
    assert secret is not None and "shown once" in created.text
    page = client.get("/settings/integrations").text
    assert secret.group(1) not in page and "never: send a test alert" in page
    [integration] = runtime.store.product().list_integrations(tenant_id)
    base = f"/settings/integrations/{integration.id}"
    assert "Test alert sent" in post(client, f"{base}/test").text
    runtime.ingest.flush_stats()
    assert "1 accepted" in client.get("/settings/integrations").text
    rotated = post(client, f"{base}/rotate").text
    assert "Secret rotated" in rotated and "the old one is still accepted until" in rotated
    assert secret.group(1) not in rotated
    assert "Previous secret" in client.get("/settings/integrations").text
    again = post(client, f"{base}/rotate")  # a double click, or a second try
    assert again.status_code == 409 and "Not rotated: the secret was rotated already" in again.text
    assert "Refuse the previous secret now" in again.text
    ended = post(client, f"{base}/revoke-previous").text  # it leaked: end its grace
    assert "The previous secret is refused from now on" in ended
    assert "Previous secret" not in ended and "Refuse the previous secret now" not in ended
    assert "Secret rotated" in post(client, f"{base}/rotate").text  # no grace was running
    assert 'tag off">disabled' in post(client, f"{base}/disable").text
    refused = post(client, f"{base}/test")
    assert refused.status_code == 409 and "Test alert refused" in refused.text
    assert "Integration enabled." in post(client, f"{base}/enable").text
    assert "Integration deleted." in post(client, f"{base}/delete").text
    assert post(client, f"{base}/rotate").status_code == 404
    actions = audit_actions(client)
    assert actions[:2] == ["integration.delete", "integration.update"]
    assert {"integration.create", "integration.test"} <= set(actions)


def test_an_integration_is_renamed_with_the_apis_message_next_to_its_field(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    post(client, "/settings/integrations/new", provider="custom", name="shop")
    [integration] = runtime.store.product().list_integrations(team.id)
    action = f"/settings/integrations/{integration.id}/rename"
    assert action in post_forms(client.get("/settings/integrations").text)
    key = f"rename-{integration.id}"
    for typed, message in (("   ", "at least 1 character"), ("x" * 201, "at most 200")):
        bad = post(client, action, name=typed)
        assert bad.status_code == 422 and message in field_error(bad.text, key)
        assert f'aria-describedby="{key}-error"' in bad.text
    assert 'value="xxxxxxxx' in bad.text  # what was typed stays
    renamed = post(client, action, name="  storefront ")
    assert "Integration renamed." in renamed.text
    assert [i.name for i in runtime.store.product().list_integrations(team.id)] == ["storefront"]
    assert audit_actions(client)[0] == "integration.update"
    assert post(client, "/settings/integrations/nope/rename", name="x").status_code == 404


def test_the_silence_form_is_the_apis_capped_and_audited(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    """The settings page's silence form wrote to the store itself: past the API's cap
    on silences and with no audit entry for creating or deleting one."""
    original = runtime.api_limits
    runtime.api_limits = replace(original, max_silences=1)
    try:
        assert (
            "Silence created."
            in post(client, "/settings/silences", matchers='{service="db"}', hours="2").text
        )
        over = post(client, "/settings/silences", matchers='{service="web"}', hours="2")
        assert over.status_code == 422 and "too many silences" in over.text
        assert 'value="{service=&#34;web&#34;}"' in over.text  # what was typed stays
    finally:
        runtime.api_limits = original
    [silence] = runtime.store.list_silences(team.id)
    assert silence["author"] == f"user:{team.email('owner')}"
    assert "Silence deleted." in post(client, f"/settings/silences/{silence['id']}/delete").text
    assert audit_actions(client)[:2] == ["silence.delete", "silence.create"]
    assert post(client, f"/settings/silences/{silence['id']}/delete").status_code == 404


def test_the_settings_pages_other_forms_are_the_apis_too(
    client: TestClient, team: Team, runtime: Runtime, shared: Shared
) -> None:
    """The settings page's integration and Slack forms and the suggestion verdicts
    wrote to the store themselves: no audit entry, and no "suggestion.accepted"
    product event for the analytics."""
    first = post(client, "/settings/integrations", provider="custom", name="shop")
    url = re.search(r'id="created-url">([^<]+)<', first.text)
    secret = re.search(r'id="created-secret">([^<]+)<', first.text)
    assert url is not None and secret is not None and "shown once" in first.text
    body = b'{"title": "disk full", "service": "db"}'
    sent = client.post(
        url.group(1), content=body, headers=auth_headers("custom", body, secret.group(1), {})
    )
    assert sent.status_code == 202, sent.text  # admission now caches the one integration
    second = post(client, "/settings/integrations", provider="custom", name="shop-2")
    url = re.search(r'id="created-url">([^<]+)<', second.text)
    secret = re.search(r'id="created-secret">([^<]+)<', second.text)
    assert url is not None and secret is not None
    sent = client.post(
        url.group(1), content=body, headers=auth_headers("custom", body, secret.group(1), {})
    )
    assert sent.status_code == 202, sent.text
    with SlackStandIn(("xoxb-settings",)) as slack:
        original, runtime.slack_api_url = runtime.slack_api_url, slack.base_url
        try:
            form = {"bot_token": "xoxb-settings", "signing_secret": "s", "default_channel": "#ops"}
            assert "Slack settings saved." in post(client, "/settings/slack", **form).text
            empty = post(client, "/settings/slack", **form | {"bot_token": "  "})
            assert empty.status_code == 422 and "Slack: " in empty.text
        finally:
            runtime.slack_api_url = original
    suggestion = add_suggestion(runtime, team.id)
    assert "Accepted" in post(client, f"/suggestions/{suggestion}/accept").text
    assert "already decided" in post(client, f"/suggestions/{suggestion}/dismiss").text
    actions = audit_actions(client)
    assert actions[:4] == [
        "suggestion.accept",
        "slack.configure",
        "integration.create",
        "integration.create",
    ]
    with tenant_connection(shared.settings, team.id) as conn:
        names = conn.execute(
            sa.select(schema.product_events.c.name).where(
                schema.product_events.c.tenant_id == team.id
            )
        ).scalars()
        assert "suggestion.accepted" in set(names)


ROUTE = {
    "name": "payments",
    "matchers": '{service="checkout"}',
    "min_severity": "high",
    "destinations": "slack #payments\nwebhook https://hooks.example.com/dd0c",
    "webhook_secret": "hook-secret",
    "escalate_after_minutes": "15",
    "escalation_destinations": "email sre@example.com, lead@example.com",
}


def test_routes_are_created_edited_and_deleted_with_errors_by_field(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    tenant_id = team.id
    bad = post(client, "/settings/routes/new", **(ROUTE | {"matchers": "{service="}))
    assert bad.status_code == 422 and field_error(bad.text, "matchers").startswith("route ")
    assert 'value="payments"' in bad.text  # what was typed stays
    bad = post(client, "/settings/routes/new", **(ROUTE | {"destinations": "pager 123"}))
    assert "line 1 starts with slack, email or webhook" in field_error(bad.text, "destinations")
    bad = post(client, "/settings/routes/new", **(ROUTE | {"escalation_destinations": "email x"}))
    assert "not an email address" in field_error(bad.text, "escalation_destinations")
    bad = post(client, "/settings/routes/new", **(ROUTE | {"webhook_secret": ""}))
    assert "'secret' must be a non-empty string" in field_error(bad.text, "webhook_secret")
    made = post(client, "/settings/routes/new", **ROUTE)
    assert made.status_code == 200 and "Route created." in made.text
    [route] = runtime.notify_settings.list_routes(tenant_id)
    assert route["escalation"]["after_seconds"] == 900
    edit = client.get(f"/settings/routes/{route['id']}").text
    assert "webhook https://hooks.example.com/dd0c" in edit and "hook-secret" not in edit
    changed = ROUTE | {"webhook_secret": "", "min_severity": "", "escalate_after_minutes": ""}
    changed |= {"escalation_destinations": "", "continue": "on"}
    assert "Route saved." in post(client, f"/settings/routes/{route['id']}", **changed).text
    [saved] = runtime.notify_settings.routes_for_sending(tenant_id)
    assert saved["continue"] is True and "escalation" not in saved
    assert "min_severity" not in saved
    assert any(d.get("secret") == "hook-secret" for d in saved["destinations"])  # kept
    deleted = post(client, f"/settings/routes/{route['id']}/delete")
    assert "Route deleted." in deleted.text and "No route yet" in deleted.text
    assert audit_actions(client)[:3] == ["route.delete", "route.update", "route.create"]


def test_quiet_hours_show_the_zone_they_run_on(client: TestClient, team: Team) -> None:
    """The list said "… UTC" after every schedule, a ``TZ=`` clause's too."""
    zoned = "TZ=Europe/Berlin; mon-fri 22:00-07:00"
    post(client, "/settings/routes/new", **(ROUTE | {"name": "berlin", "quiet_hours": zoned}))
    post(
        client,
        "/settings/routes/new",
        **(ROUTE | {"name": "utc", "quiet_hours": "sat 02:00-04:00"}),
    )
    bad = post(
        client, "/settings/routes/new", **(ROUTE | {"quiet_hours": "TZ=Nowhere; sat 02:00-04:00"})
    )
    assert "unknown time zone 'Nowhere'" in field_error(bad.text, "quiet_hours")
    listed = client.get("/settings/routes").text
    assert (
        f"<dd>{html_text.escape(zoned)}</dd>" in listed and "<dd>sat 02:00-04:00 UTC</dd>" in listed
    )


def test_routes_move_up_and_down(client: TestClient, team: Team, runtime: Runtime) -> None:
    for name in ("first", "second", "third"):
        post(client, "/settings/routes/new", name=name, destinations="slack #x")
    ids = [r["id"] for r in runtime.notify_settings.list_routes(team.id)]
    page = client.get("/settings/routes").text
    assert page.count('value="up"') == 2 and page.count('value="down"') == 2  # not past the ends
    moved = post(client, f"/settings/routes/{ids[2]}/move", direction="up")
    assert "Route moved" in moved.text
    assert [r["name"] for r in runtime.notify_settings.list_routes(team.id)] == [
        "first",
        "third",
        "second",
    ]
    post(client, f"/settings/routes/{ids[0]}/move", direction="down")
    assert [r["name"] for r in runtime.notify_settings.list_routes(team.id)] == [
        "third",
        "first",
        "second",
    ]
    assert audit_actions(client)[0] == "route.reorder"


RULE = {"source": '{alertname="NodeDown"}', "target": '{severity=~"low|medium"}'}


def test_inhibition_rules_are_created_edited_and_deleted_with_errors_by_field(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    bad = post(client, "/settings/inhibitions/new", **(RULE | {"target": '{a=~"(?=x)"}'}))
    assert bad.status_code == 422
    assert "invalid perl operator" in field_error(bad.text, "target")
    assert 'aria-describedby="target-error target-help"' in bad.text
    assert field_error(bad.text, "source") == ""
    assert 'value="{alertname=&#34;NodeDown&#34;}"' in bad.text  # what was typed stays
    many = " ".join(f"l{n}" for n in range(51))
    bad = post(client, "/settings/inhibitions/new", **(RULE | {"equal": many, "source": "{}"}))
    assert "at most 50 items" in field_error(bad.text, "equal")
    assert "at least one matcher" in field_error(bad.text, "source")
    made = post(client, "/settings/inhibitions/new", **RULE, equal="node, cluster node")
    assert made.status_code == 200 and "Inhibition rule created." in made.text
    [rule] = runtime.store.list_inhibitions(team.id)
    assert rule["equal"] == ["node", "cluster"]
    edit = client.get(f"/settings/inhibitions/{rule['id']}").text
    assert 'value="node, cluster"' in edit and "Save rule" in edit
    saved = post(client, f"/settings/inhibitions/{rule['id']}", **(RULE | {"equal": ""}))
    assert "Inhibition rule saved." in saved.text and "none: any matching target" in saved.text
    [changed] = runtime.store.tenant_config(team.id)[1].inhibitions
    assert changed.id == rule["id"] and changed.equal == ()
    assert client.get("/settings/inhibitions/nope").status_code == 404
    assert post(client, "/settings/inhibitions/nope", **RULE).status_code == 404
    deleted = post(client, f"/settings/inhibitions/{rule['id']}/delete")
    assert "Inhibition rule deleted." in deleted.text and "No inhibition rule yet" in deleted.text
    actions = audit_actions(client)
    assert actions == ["inhibition.delete", "inhibition.update", "inhibition.create"]


def test_topology_is_edited_as_a_list_and_drawn(
    client: TestClient, team: Team, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id = team.id
    saved = post(client, "/settings/topology", service="checkout", depends_on="payments, db")
    assert "Dependencies saved." in saved.text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="topology"' in saved.text
    assert "checkout depends on payments" in saved.text  # an edge's title
    post(client, "/settings/topology", service="payments", depends_on="db")
    _, rules = runtime.store.tenant_config(tenant_id)
    assert rules.dependencies == {"checkout": {"payments", "db"}, "payments": {"db"}}
    itself = post(client, "/settings/topology", service="db", depends_on="db")
    assert itself.status_code == 422 and "cannot depend on itself" in itself.text
    nameless = post(client, "/settings/topology", service="", depends_on="db")
    assert field_error(nameless.text, "service") == "name the service"
    focused = client.get("/settings/topology?focus=payments").text
    assert 'class="node focus"' in focused and "Around payments" in focused
    monkeypatch.setattr(runtime, "api_limits", replace(runtime.api_limits, max_topology_edges=3))
    over = post(client, "/settings/topology", service="web", depends_on="checkout, cdn")
    assert over.status_code == 422 and "DD0C_MAX_TOPOLOGY_EDGES" in over.text
    post(client, "/settings/topology", service="checkout", depends_on="")
    _, rules = runtime.store.tenant_config(tenant_id)
    assert rules.dependencies == {"payments": {"db"}}
    assert audit_actions(client) == ["topology.replace"] * 3


def test_correlation_settings_are_saved_and_checked(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    tenant_id = team.id
    form = {
        "correlation_window_seconds": "600",
        "max_incident_span_seconds": "14400",
        "deploy_lookback_seconds": "900",
        "flap_threshold": "4",
        "flap_window_seconds": "3600",
        "governance_mode": "strict",
        "never_suppress_services": "payments, auth",
        "feature_topology": "on",
        "feature_deploys": "on",
        "feature_inhibition": "on",
        "auto_resolve": "on",
    }
    assert "Settings saved" in post(client, "/settings/correlation", **form).text
    settings, _ = runtime.store.tenant_config(tenant_id)
    assert settings.correlation_window_seconds == 600 and settings.governance_mode == "strict"
    assert not settings.features.flapping
    assert settings.never_suppress_services == {"payments", "auth"}
    assert "Nothing changed." in post(client, "/settings/correlation", **form).text
    small = post(client, "/settings/correlation", **(form | {"correlation_window_seconds": "5"}))
    assert small.status_code == 422
    assert "greater than or equal to 30" in field_error(small.text, "correlation_window_seconds")
    assert 'value="5"' in small.text
    word = post(client, "/settings/correlation", **(form | {"flap_threshold": "four"}))
    assert field_error(word.text, "flap_threshold") == "enter a whole number"
    span = post(client, "/settings/correlation", **(form | {"max_incident_span_seconds": "300"}))
    assert "must be at least" in field_error(span.text, "max_incident_span_seconds")
    assert audit_actions(client) == ["settings.update"]
    assert "Not configured" in client.get("/settings/correlation").text  # SMTP
    nowhere = post(client, "/settings/correlation", **(form | {"time_zone": "Europe"}))
    assert "unknown time zone 'Europe'" in field_error(nowhere.text, "time_zone")
    tokyo = post(client, "/settings/correlation", **(form | {"time_zone": "Asia/Tokyo"}))
    assert "Settings saved" in tokyo.text and 'value="Asia/Tokyo"' in tokyo.text
    assert runtime.store.tenant_settings(tenant_id).time_zone == "Asia/Tokyo"


def test_the_team_is_invited_and_roles_follow_the_owner_rules(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    tenant_id = team.id
    bad = post(client, "/settings/team/invite", email="not-an-address", role="member")
    assert bad.status_code == 422 and field_error(bad.text, "email")
    invited = post(client, "/settings/team/invite", email="new@example.com", role="member")
    assert "Invitation recorded" in invited.text and "new@example.com" in invited.text
    post(client, "/settings/team/invite", email="typo@exmaple.com", role="member")
    page = client.get("/settings/team").text
    typo = re.findall(r'action="/settings/team/invitations/([^/]+)/revoke"', page)
    assert len(typo) == 2
    revoked = post(client, f"/settings/team/invitations/{typo[1]}/revoke")
    assert "Invitation revoked" in revoked.text and "typo@exmaple.com" not in revoked.text
    assert "new@example.com" in revoked.text
    assert post(client, f"/settings/team/invitations/{typo[1]}/revoke").status_code == 404
    add_user(runtime, tenant_id, team.email("admin"), "admin")
    add_user(runtime, tenant_id, team.email("member"), "member")
    accounts = runtime.store.accounts()
    member = accounts.user_by_email(team.email("member"))
    owner = accounts.user_by_email(team.email("owner"))
    assert member is not None and owner is not None
    assert "Role changed." in post(client, f"/settings/team/{member.id}/role", role="viewer").text
    last = post(client, f"/settings/team/{owner.id}/role", role="admin")
    assert last.status_code == 409 and "keeps at least one owner" in last.text
    client.cookies.clear()
    log_in(client, team.email("admin"))
    promoted = post(client, f"/settings/team/{member.id}/role", role="owner")
    assert promoted.status_code == 403 and "only an owner may change an owner" in promoted.text
    assert "Member removed" in post(client, f"/settings/team/{member.id}/remove").text
    assert accounts.member(tenant_id, member.id) is None
    actions = audit_actions(client)
    assert actions[:2] == ["user.remove", "user.role"] and "invitation.create" in actions
    assert "invitation.revoke" in actions


def test_an_api_key_is_shown_once_works_and_is_revoked(client: TestClient, team: Team) -> None:
    bad = post(client, "/settings/api-keys/new", name="ci", scope="read", expires_in_days="0")
    assert bad.status_code == 422 and field_error(bad.text, "expires_in_days")
    made = post(client, "/settings/api-keys/new", name="ci", scope="read", expires_in_days="30")
    found = re.search(r'id="created-key">([^<]+)<', made.text)
    assert found is not None and "shown once" in made.text
    key = found.group(1)
    listed = client.get("/settings/api-keys").text
    assert key not in listed
    assert f'<td data-label="Made by">{team.email("owner")}</td>' in listed  # whose key
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/incidents", headers=bearer).status_code == 200
    key_id = re.findall(r'action="/settings/api-keys/([^/]+)/revoke"', made.text)[0]
    revoked = post(client, f"/settings/api-keys/{key_id}/revoke")
    assert "API key revoked" in revoked.text and 'tag off">revoked' in revoked.text
    time.sleep(0.01)
    assert client.get("/v1/incidents", headers=bearer).status_code == 401
    # its use after the revocation is on record too: a leaked or forgotten key in use
    assert audit_actions(client)[:3] == ["api_key.refused", "api_key.revoke", "api_key.create"]


def test_usage_warns_at_80_percent(client: TestClient, team: Team, shared: Shared) -> None:
    tenant_id = team.id
    shared.runtime.store.product().set_plan(tenant_id, "free")
    quiet = client.get("/settings/usage").text
    assert "monthly quota" in quiet and 'role="alert"' not in quiet
    with tenant_connection(shared.settings, tenant_id) as conn:
        conn.execute(
            sa.insert(schema.usage_alerts).values(
                tenant_id=tenant_id, month=month_of(time.time()), alerts=8_500
            )
        )
    warned = client.get("/settings/usage").text
    assert 'role="alert">85.0 % of this month' in warned and "<meter" in warned


def test_the_audit_log_filters_and_pages(client: TestClient, team: Team, runtime: Runtime) -> None:
    tenant_id = team.id
    product = runtime.store.product()
    for n in range(55):
        action = "route.create" if n % 2 else "silence.create"
        product.record_audit(
            tenant_id,
            actor=f"user:a{n % 3}@example.com",
            action=action,
            target_type="x",
            target_id=str(n),
            detail={},
            client="10.0.0.1",
        )
    first = client.get("/settings/audit").text
    assert first.count("<tr>") == 50 + 1  # the header row
    older = re.search(r'href="(/settings/audit\?[^"]*cursor=[^"]+)"', first)
    assert older is not None
    assert client.get(older.group(1).replace("&amp;", "&")).text.count("<tr>") == 5 + 1
    routes = client.get("/settings/audit?action=route.create&actor=user:a1@example.com").text
    assert set(re.findall(r'data-label="Who">([^<]+)<', routes)) == {"user:a1@example.com"}
    bad = client.get("/settings/audit?since=yesterday")
    assert bad.status_code == 400 and field_error(bad.text, "since")
    assert client.get("/settings/audit?cursor=garbage").status_code == 400


def test_a_dead_letter_is_replayed_once_by_its_own_tenant(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    made = post(client, "/settings/integrations/new", provider="custom")
    url = re.search(r'id="created-url">([^<]+)<', made.text)
    secret = re.search(r'id="created-secret">([^<]+)<', made.text)
    assert url is not None and secret is not None
    body = b'{"hello": 1}'  # signed JSON, but no alert: the worker dead-letters it
    headers = {
        "Content-Type": "application/json",
        **auth_headers("custom", body, secret.group(1), {}),
    }
    assert client.post(url.group(1), content=body, headers=headers).status_code == 202
    drain(runtime)
    page = client.get("/settings/dead-letters").text
    [dead_id] = re.findall(r'action="/settings/dead-letters/([^/]+)/replay"', page)
    other = runtime.store.create_tenant("Globex")
    add_user(runtime, other.id, team.email("else"), "owner")
    client.cookies.clear()
    log_in(client, team.email("else"))
    assert post(client, f"/settings/dead-letters/{dead_id}/replay").status_code == 404
    client.cookies.clear()
    log_in(client, team.email("owner"))
    replayed = post(client, f"/settings/dead-letters/{dead_id}/replay")
    assert "put back on the queue" in replayed.text
    assert "dead_letter.replay" in audit_actions(client)


def test_a_viewer_reads_without_controls_and_every_action_is_refused(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    tenant_id = team.id
    post(client, "/settings/topology", service="checkout", depends_on="db")
    post(client, "/settings/routes/new", **(ROUTE | {"webhook_secret": "s"}))
    post(client, "/settings/integrations/new", provider="custom")
    post(client, "/settings/api-keys/new", name="ci", scope="read")
    post(client, "/settings/inhibitions/new", **RULE)
    add_user(runtime, tenant_id, team.email("member"), "member")
    [route] = runtime.notify_settings.list_routes(tenant_id)
    [rule] = runtime.store.list_inhibitions(tenant_id)
    pages = [
        *CONFIG_PAGES,
        f"/settings/routes/{route['id']}",
        f"/settings/inhibitions/{rule['id']}",
    ]
    actions = set()
    for path in pages:
        actions |= set(post_forms(client.get(path).text))
    actions -= {"/logout"}
    assert len(actions) == 22  # every form of the pages above (a route: its test too)
    add_user(runtime, tenant_id, team.email("viewer"), "viewer")
    client.cookies.clear()
    log_in(client, team.email("viewer"))
    for path in pages:
        response = client.get(path)
        if path in ("/settings/api-keys", "/settings/audit"):
            assert response.status_code == 403, path
            continue
        assert response.status_code == 200, path
        assert post_forms(response.text) == ["/logout"], path
    assert "can read the settings but not change them" in client.get("/settings/correlation").text
    for action in sorted(actions):
        assert post(client, action).status_code == 403, action


def test_actions_need_the_csrf_token_and_this_site(
    client: TestClient, team: Team, runtime: Runtime
) -> None:
    tenant_id = team.id
    for path, data in (
        ("/settings/topology", {"service": "a", "depends_on": "b"}),
        ("/settings/api-keys/new", {"name": "k", "scope": "admin"}),
        ("/settings/team/invite", {"email": "x@example.com", "role": "admin"}),
        ("/settings/inhibitions/new", RULE),
    ):
        assert client.post(path, data=data).status_code == 403, path
        foreign = client.post(
            path,
            data={"csrf_token": csrf(client), **data},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403, path
    _, rules = runtime.store.tenant_config(tenant_id)
    assert rules.dependencies == {} and rules.inhibitions == ()
    assert runtime.store.accounts().api_keys(tenant_id) == []

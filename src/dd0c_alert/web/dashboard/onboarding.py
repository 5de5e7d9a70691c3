"""The set-up guide a new team lands on after signing up: choose a source, paste its
webhook URL and snippet, send a test alert and watch it become a correlated incident,
connect Slack or email, and see how long the first incident took.

It stands on what the REST API does (``integrations_api``, ``slack_api``, ``routes_api``
and ``GET /v1/onboarding``): the same store calls, the same audit entries, and the
test alert goes through the real webhook admission path as ``POST
/v1/integrations/{id}/test`` sends it. Every step works without JavaScript (a refresh
link); with it, the progress list polls ``/onboarding/progress``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from dd0c_alert.notify.slack.manifest import slack_manifest
from dd0c_alert.pipeline import route_documents, slack_actions
from dd0c_alert.pipeline.ingest import Rejected
from dd0c_alert.pipeline.sample_alert import sample_delivery
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.setup_snippets import snippet
from dd0c_alert.storage.ports import IncidentFilter, Integration

from .. import notify_test_api
from ..audit import audit
from ..permissions import Principal
from .api_bridge import call, posting, trial_outcome
from .guard import acting, runtime_of, store_of, viewer
from .render import confined, page, page_router, redirect, templates
from .session import auth_config, field
from .stats import duration


@dataclass(frozen=True)
class Source:
    provider: str
    name: str
    what: str
    deploys: bool = False


#: The ten providers in the order a team most likely looks for them.
SOURCES = (
    Source("alertmanager", "Prometheus Alertmanager", "a receiver in alertmanager.yml"),
    Source("grafana", "Grafana Alerting", "a webhook contact point"),
    Source("datadog", "Datadog", "a webhook you mention in monitors"),
    Source("pagerduty", "PagerDuty webhooks (v3)", "incident events from PagerDuty"),
    Source("pagerduty-events", "PagerDuty Events API v2", "tools that speak Events v2"),
    Source("opsgenie", "Opsgenie", "an outgoing webhook integration"),
    Source("custom", "Any other tool (signed JSON)", "a small JSON body, HMAC-signed"),
    Source("github", "GitHub deployments", "deploys that explain incidents", deploys=True),
    Source("gitlab", "GitLab deployments", "deploys that explain incidents", deploys=True),
    Source("argocd", "Argo CD syncs", "deploys that explain incidents", deploys=True),
)
BY_PROVIDER = {s.provider: s for s in SOURCES}
assert set(BY_PROVIDER) == set(PROVIDERS), "every provider has a clear name here"

router = page_router()

_NOTES = {
    "sent": "Test alert sent through the webhook path: watch it arrive below.",
    "slack": "Slack connected: paging incidents go to the default channel.",
    "slack-offline": "Slack settings saved; Slack could not be reached to check the token.",
    "email": "Email connected: paging incidents are mailed to that address.",
}


def _url(request: Request, integration: Integration) -> str:
    base = auth_config(request).public_url.rstrip("/")
    return f"{base}/v1/wh/{integration.tenant_id}/{integration.provider}/{integration.id}"


def seconds_to_first_incident(steps: list[dict[str, Any]]) -> str:
    """The recorded time from the first alert to the first correlated incident, in
    words; empty until there is one."""
    step = next((s for s in steps if s["step"] == "first_incident_correlated"), None)
    seconds = (step or {}).get("detail", {}).get("seconds_from_first_alert")
    if not isinstance(seconds, int | float):
        return ""
    return f"{seconds:.1f} s" if seconds < 120 else duration(seconds)


def progress_of(request: Request, tenant_id: str, chosen: Integration | None) -> dict[str, Any]:
    """What the progress list shows: the steps with their times, the incident the
    first correlation opened, and the newest incident with alerts from the chosen
    source (the test alert's, once it is processed)."""
    store = store_of(request)
    steps = store.product().onboarding(tenant_id)
    by_step = {s["step"]: s for s in steps}
    first = by_step["first_incident_correlated"]["detail"].get("incident_id")
    latest = None
    if chosen is not None and not BY_PROVIDER[chosen.provider].deploys:
        found = store.list_incidents(tenant_id, IncidentFilter(source=chosen.provider), 1, None)
        latest = found.items[0] if found.items else None
    return {
        "steps": by_step,
        "complete": all(s["done"] for s in steps),
        "first_incident": first,
        "latest": latest,
        "time_to_first": seconds_to_first_incident(steps),
    }


def _state(request: Request, me: Principal, chosen_id: str) -> dict[str, Any]:
    """``chosen_id``: the integration the guide is about; empty: the newest one (a
    reopened guide shows where the team is); ``new``: none, to choose another source."""
    store, settings = store_of(request), runtime_of(request).notify_settings
    integrations = store.product().list_integrations(me.tenant_id)
    if not chosen_id and integrations:
        chosen_id = integrations[-1].id
    chosen = next((i for i in integrations if i.id == chosen_id), None)
    return {
        "integrations": integrations,
        "chosen": chosen,
        "chosen_url": _url(request, chosen) if chosen else "",
        "chosen_source": BY_PROVIDER[chosen.provider] if chosen else None,
        "progress": progress_of(request, me.tenant_id, chosen),
        "slack": slack_actions.slack_view(settings, me.tenant_id),
        "email_routes": [
            r
            for r in settings.list_routes(me.tenant_id)
            if any(d.get("type") == "email" for d in r.get("destinations", []))
        ],
    }


async def _page(
    request: Request, me: Principal, chosen_id: str = "", status_code: int = 200, **extra: Any
) -> Response:
    found = await run_in_threadpool(_state, request, me, chosen_id)
    return page(
        request,
        "onboarding.html",
        me,
        status_code,
        sources=SOURCES,
        **found,
        **extra,
    )


@router.get("/onboarding")
async def onboarding(request: Request, integration: str = "", msg: str = "") -> Response:
    me = await viewer(request)
    return await _page(request, me, integration[:32], message=_NOTES.get(msg, ""))


@router.get("/onboarding/progress")
async def progress(request: Request, integration: str = "") -> Response:
    """The progress list alone, for the page's script to poll."""
    me = await viewer(request)
    found = await run_in_threadpool(_state, request, me, integration[:32])
    html = templates.get_template("_onboarding_progress.html").render(
        progress=found["progress"], chosen=found["chosen"], chosen_source=found["chosen_source"]
    )
    return confined(Response(html, media_type="text/html", headers={"Cache-Control": "no-store"}))


@router.post("/onboarding/integration")
async def create_integration(request: Request) -> Response:
    me, form = await acting(request, "integrations:write")
    provider = field(form, "provider")
    if provider not in PROVIDERS:
        return await _page(request, me, status_code=422, error="Choose one of the sources.")
    secret = secrets.token_urlsafe(32)
    name = field(form, "name")[:200] or BY_PROVIDER[provider].name
    made = await run_in_threadpool(
        store_of(request).create_integration, me.tenant_id, provider, name, secret
    )
    runtime_of(request).ingest.forget_integrations(me.tenant_id, provider)
    detail = {"provider": provider, "name": made.name}
    await audit(request, me, "integration.create", "integration", made.id, detail)
    created = {"secret": secret, "snippet": snippet(provider, _url(request, made), secret)}
    note = "Integration created: copy the secret now, it is shown only this once."
    return await _page(request, me, made.id, 201, created=created, message=note)


@router.post("/onboarding/test")
async def send_test(request: Request) -> Response:
    """The provider's realistic sample, signed with the integration's secret, through
    the real webhook admission path (as ``POST /v1/integrations/{id}/test``)."""
    me, form = await acting(request, "integrations:write")
    chosen_id = field(form, "integration")[:32]
    product = store_of(request).product()
    integration = await run_in_threadpool(product.get_integration, me.tenant_id, chosen_id)
    if integration is None:
        raise HTTPException(404, "no such integration")
    headers, body = sample_delivery(integration)
    try:
        await runtime_of(request).ingest.receive(
            me.tenant_id, integration.provider, integration.id, headers, body
        )
    except Rejected as exc:
        error = f"The webhook path refused the test alert: {exc.detail}"
        return await _page(request, me, chosen_id, 409, error=error)
    await audit(request, me, "integration.test", "integration", integration.id)
    return redirect(request, f"/onboarding?integration={integration.id}&msg=sent#progress-h")


@router.get("/onboarding/slack-manifest.json")
async def manifest(request: Request) -> Response:
    """The Slack app manifest for this server, to paste at api.slack.com/apps."""
    await viewer(request)
    body = orjson.dumps(slack_manifest(auth_config(request).public_url), option=orjson.OPT_INDENT_2)
    headers = {"Content-Disposition": 'attachment; filename="dd0c-alert-slack-manifest.json"'}
    return Response(body, media_type="application/json", headers=headers)


@router.post("/onboarding/slack")
async def connect_slack(request: Request) -> Response:
    me, form = await acting(request, "config:write")
    runtime, chosen_id = runtime_of(request), field(form, "integration")[:32]
    try:
        check = await slack_actions.configure_slack(
            runtime.notify_settings,
            me.tenant_id,
            bot_token=field(form, "bot_token"),
            signing_secret=field(form, "signing_secret"),
            default_channel=field(form, "default_channel"),
            slack_api_url=runtime.slack_api_url,
        )
    except ValueError as exc:
        return await _page(request, me, chosen_id, 422, error=f"Slack: {exc}.")
    detail = {"default_channel": field(form, "default_channel")}  # never the secrets
    await audit(request, me, "slack.configure", "slack", me.tenant_id, detail)
    note = "slack" if check == "ok" else "slack-offline"
    return redirect(request, f"/onboarding?integration={chosen_id}&msg={note}#notify-h")


@router.post("/onboarding/email")
async def connect_email(request: Request) -> Response:
    """A route mailing every paging incident to one address."""
    me, form = await acting(request, "config:write")
    address, chosen_id = field(form, "email")[:320], field(form, "integration")[:32]
    settings, cap = runtime_of(request).notify_settings, runtime_of(request).api_limits.max_routes
    routes = await run_in_threadpool(settings.list_routes, me.tenant_id)
    document = {
        "name": route_documents.free_name("email (set-up guide)", routes),
        "destinations": [{"type": "email", "to": [address]}],
    }
    try:
        prepared = route_documents.prepare(document)
    except ValueError as exc:
        return await _page(request, me, chosen_id, 422, error=f"Email: {exc}.")
    if len(routes) >= cap:
        error = f"Email: this team has {cap} routes already (DD0C_MAX_ROUTES)."
        return await _page(request, me, chosen_id, 422, error=error)
    stored = await run_in_threadpool(settings.save_route, me.tenant_id, prepared)
    shown = route_documents.shown(stored or {})
    await audit(request, me, "route.create", "route", str(shown.get("id")), shown)
    return redirect(request, f"/onboarding?integration={chosen_id}&msg=email#notify-h")


@router.post("/onboarding/notify-test")
async def test_notification(request: Request) -> Response:
    """A test notification to the Slack channel (``target=slack``, ``POST
    /v1/slack/test``) or to an email route (``target=<route id>``, ``POST
    /v1/routes/{id}/test``), shown on the notification step: a test alert folds into
    the open test incident and sends nothing, this always sends."""
    me, form = await posting(request, notify_test_api.test_slack)
    target, chosen_id = field(form, "target")[:64], field(form, "integration")[:32]
    if target == "slack":
        answer = await call(notify_test_api.test_slack, request, me)
    else:
        answer = await call(notify_test_api.test_route, request, me, route_id=target)
    if answer.status == 404:
        raise HTTPException(404, answer.error)
    status = 200 if answer.ok else answer.status
    return await _page(request, me, chosen_id, status, tested=trial_outcome(answer))

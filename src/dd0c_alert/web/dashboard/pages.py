"""Analytics, suggestions (with their what-if replay) and settings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from dd0c_alert.correlation.suggestions import Dependency, DependencyRemoval, rule_for
from dd0c_alert.domain.times import window_start
from dd0c_alert.pipeline import route_documents, slack_actions
from dd0c_alert.pipeline.replay import Proposal, ReplayBusy, replay
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.storage.ports import Store

from .. import config_api, integrations_api, slack_api
from .. import suggestions as suggestions_api
from ..config_api import silence_matchers_of
from ..permissions import Principal
from .api_bridge import Endpoint, call, field_errors, posting
from .guard import runtime_of, store_of, viewer
from .render import page, page_router, redirect
from .session import auth_config, field
from .stats import WINDOWS, duration, summarise
from .svg import Series, bar_chart

router = page_router()
REPLAY_DAYS = 7
#: How long a suggestion page waits for another replay of this process to end.
REPLAY_WAIT_SECONDS = 20.0


@router.get("/analytics")
async def analytics(request: Request, window: str = "7d") -> Response:
    me = await viewer(request)
    days = WINDOWS.get(window, 7)
    now = datetime.now(UTC)
    since = window_start(now, days)  # the API's window: the same numbers
    product = store_of(request).product()
    found = await run_in_threadpool(product.analytics, me.tenant_id, since, now, None)
    summary = summarise(found, days, now)
    chart = bar_chart(
        summary.days,
        [
            Series("alerts", summary.alerts_per_day, "alerts"),
            Series("incidents", summary.incidents_per_day, "incidents"),
            Series("pages", summary.pages_per_day, "pages"),
        ],
        f"Alerts, incidents and pages per day, last {days} days",
    )
    return page(
        request,
        "analytics.html",
        me,
        summary=summary,
        chart=chart,
        window=f"{days}d",
        windows=list(WINDOWS),
        duration=duration,
    )


def _suggestions(store: Store, tenant_id: str) -> list[dict[str, Any]]:
    return store.list_suggestions(tenant_id, None, None, 200, None).items


@router.get("/suggestions")
async def suggestions(request: Request, msg: str = "") -> Response:
    me = await viewer(request)
    items = await run_in_threadpool(_suggestions, store_of(request), me.tenant_id)
    return page(request, "suggestions.html", me, items=items, message=_NOTES.get(msg, ""))


def what_if(store: Store, tenant_id: str, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The replay of the last days with the suggestion's rule added."""
    rule = rule_for(item["id"], "what-if", item["kind"], item["title"], item["proposal"], now)
    _, rules = store.tenant_config(tenant_id)
    if isinstance(rule, Dependency | DependencyRemoval):
        deps = {k: set(v) for k, v in rules.dependencies.items()}
        if isinstance(rule, Dependency):
            deps.setdefault(rule.service, set()).add(rule.depends_on)
        else:
            deps.get(rule.service, set()).discard(rule.depends_on)
        proposal = Proposal(dependencies={k: frozenset(v) for k, v in deps.items()})
    elif rule is not None:
        proposal = Proposal(silences=(*rules.silences, rule))
    else:
        proposal = Proposal()
    since = now - timedelta(days=REPLAY_DAYS)
    return replay(store, tenant_id, since, now, proposal, wait=REPLAY_WAIT_SECONDS)


@router.get("/suggestions/{suggestion_id}")
async def suggestion_page(request: Request, suggestion_id: str) -> Response:
    me, store = await viewer(request), store_of(request)
    items = await run_in_threadpool(_suggestions, store, me.tenant_id)
    item = next((i for i in items if i["id"] == suggestion_id), None)
    if item is None:
        raise HTTPException(404, "no such suggestion")
    report, problem = None, ""
    try:
        report = await run_in_threadpool(what_if, store, me.tenant_id, item, datetime.now(UTC))
    except ValueError as exc:
        problem = str(exc)
    except ReplayBusy:
        problem = "Other replays are running: reload the page in a minute for this one."
    return page(
        request, "suggestion.html", me, item=item, report=report, problem=problem, days=REPLAY_DAYS
    )


_NOTES = {"accepted": "Accepted: the rule is in place.", "dismissed": "Dismissed."}
_NOTES["decided"] = "Nothing changed: it was already decided."


@router.post("/suggestions/{suggestion_id}/accept")
async def accept(request: Request, suggestion_id: str) -> Response:
    return await _decide(request, suggestions_api.accept, suggestion_id, "accepted")


@router.post("/suggestions/{suggestion_id}/dismiss")
async def dismiss(request: Request, suggestion_id: str) -> Response:
    return await _decide(request, suggestions_api.dismiss, suggestion_id, "dismissed")


async def _decide(request: Request, endpoint: Endpoint, suggestion_id: str, note: str) -> Response:
    """Through the API's endpoints: their audit entry and the product event that
    counts accepted suggestions."""
    me, _ = await posting(request, endpoint)
    answer = await call(endpoint, request, me, suggestion_id=suggestion_id)
    if answer.status == 409:
        note = "decided"
    elif not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return redirect(request, f"/suggestions?msg={note}")


def _integrations(store: Store, tenant_id: str) -> list[Any]:
    return [i for p in sorted(PROVIDERS) for i in store.integrations_for(tenant_id, p)]


def settings_of(request: Request, tenant_id: str) -> dict[str, Any]:
    store, notify = store_of(request), runtime_of(request).notify_settings
    return {
        "silences": store.list_silences(tenant_id),
        "routes": [route_documents.shown(r) for r in notify.list_routes(tenant_id)],
        "slack": slack_actions.slack_view(notify, tenant_id),
        "integrations": _integrations(store, tenant_id),
    }


@router.get("/settings")
async def settings(request: Request, msg: str = "") -> Response:
    me = await viewer(request)
    found = await run_in_threadpool(settings_of, request, me.tenant_id)
    base = auth_config(request).public_url.rstrip("/")
    return page(
        request,
        "settings.html",
        me,
        **found,
        base_url=base,
        providers=sorted(PROVIDERS),
        message=_SETTINGS_NOTES.get(msg, ""),
    )


_SETTINGS_NOTES = {
    "silence": "Silence created.",
    "deleted": "Silence deleted.",
    "extended": "Silence extended by 2 hours.",
    "slack": "Slack settings saved.",
}


#: The silence form's bounds (its input's ``min`` and ``max``), in hours.
HOURS = (0.1, 8760.0)


def silence_hours(text: str) -> timedelta:
    """The silence's duration; ValueError with the bounds for anything else ("abc",
    "nan", "inf", 1e30: float() reads them all, and timedelta overflows)."""
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not HOURS[0] <= hours <= HOURS[1]:  # NaN compares false
        raise ValueError(f"hours must be a number from {HOURS[0]:g} to {HOURS[1]:g}")
    return timedelta(hours=hours)


@router.post("/settings/silences")
async def create_silence(request: Request) -> Response:
    """Through the API's own endpoint (``api_bridge``): its matcher parser, its cap on
    the number of silences and its audit entry."""
    me, form = await posting(request, config_api.create_silence)
    typed = {k: field(form, k) for k in ("matchers", "hours", "comment")}
    try:
        silence_matchers_of(typed["matchers"])  # the parser's message, without pydantic's wording
        duration = silence_hours(field(form, "hours", "2"))
    except ValueError as exc:
        return await _settings_error(request, me, f"Silence: {exc}", silence=typed)
    now = datetime.now(UTC)
    body = config_api.SilenceIn(
        matchers=typed["matchers"],
        starts_at=now,
        ends_at=now + duration,
        author=me.actor[:200],
        comment=typed["comment"][:4000],
    )
    answer = await call(config_api.create_silence, request, me, body=body)
    if not answer.ok:
        return await _settings_error(request, me, f"Silence: {answer.error}", silence=typed)
    return redirect(request, "/settings?msg=silence")


#: What "Extend" adds to a silence's end (or to now, if it has ended).
EXTEND_BY = timedelta(hours=2)


@router.post("/settings/silences/{silence_id}/extend")
async def extend_silence(request: Request, silence_id: str) -> Response:
    """Two more hours for a maintenance window that runs long (``PUT /v1/silences``)."""
    me, _ = await posting(request, config_api.replace_silence)
    listed = await call(config_api.list_silences, request, me)
    found = next((s for s in listed.value["items"] if s["id"] == silence_id), None)
    if found is None or found["ends_at"] is None:
        raise HTTPException(404, "no such silence with an end")
    ends = max(datetime.fromisoformat(found["ends_at"]), datetime.now(UTC)) + EXTEND_BY
    keep = {k: found[k] for k in ("matchers", "starts_at", "schedule", "author", "comment")}
    body = config_api.SilenceIn(**keep, ends_at=ends)
    answer = await call(config_api.replace_silence, request, me, silence_id=silence_id, body=body)
    if not answer.ok:
        return await _settings_error(request, me, f"Silence: {answer.error}")
    return redirect(request, "/settings?msg=extended")


@router.post("/settings/silences/{silence_id}/delete")
async def delete_silence(request: Request, silence_id: str) -> Response:
    me, _ = await posting(request, config_api.delete_silence)
    answer = await call(config_api.delete_silence, request, me, silence_id=silence_id)
    if not answer.ok:
        raise HTTPException(answer.status, answer.error)
    return redirect(request, "/settings?msg=deleted")


@router.post("/settings/slack")
async def save_slack(request: Request) -> Response:
    me, form = await posting(request, slack_api.put_slack)
    try:
        body = slack_api.SlackSettingsIn(
            bot_token=field(form, "bot_token"),
            signing_secret=field(form, "signing_secret"),
            default_channel=field(form, "default_channel"),
        )
    except ValidationError as exc:
        where, problem = next(iter(field_errors(exc).items()))
        return await _settings_error(request, me, f"Slack: {where}: {problem}")
    answer = await call(slack_api.put_slack, request, me, body=body)
    if not answer.ok:
        return await _settings_error(request, me, f"Slack: {answer.error}")
    return redirect(request, "/settings?msg=slack")


@router.post("/settings/integrations")
async def create_integration(request: Request) -> Response:
    """Through the API's endpoint: its audit entry, and its cache refresh."""
    me, form = await posting(request, integrations_api.create_integration)
    provider = field(form, "provider")
    if provider not in PROVIDERS:
        return await _settings_error(request, me, "Integration: choose a source.")
    body = integrations_api.IntegrationIn(provider=provider, name=field(form, "name")[:200] or None)
    answer = await call(integrations_api.create_integration, request, me, body=body)
    if not answer.ok:
        return await _settings_error(request, me, f"Integration: {answer.error}")
    made = answer.value
    created = {"provider": provider, "url": made["webhook_url"], "secret": made["secret"]}
    created["snippet"] = made["setup"]
    found = await run_in_threadpool(settings_of, request, me.tenant_id)
    return page(
        request,
        "settings.html",
        me,
        **found,
        base_url=auth_config(request).public_url.rstrip("/"),
        providers=sorted(PROVIDERS),
        created=created,
        message="Integration created: copy the secret now, it is shown once.",
    )


async def _settings_error(
    request: Request, me: Principal, error: str, silence: dict[str, str] | None = None
) -> Response:
    """The settings page with the refused form's error; ``silence``: what was typed in
    the silence form, shown again so nothing has to be typed twice."""
    found = await run_in_threadpool(settings_of, request, me.tenant_id)
    base = auth_config(request).public_url.rstrip("/")
    return page(
        request,
        "settings.html",
        me,
        422,
        **found,
        base_url=base,
        providers=sorted(PROVIDERS),
        error=error,
        silence=silence or {},
    )

"""Slack for the caller's tenant (API key), and the two endpoints Slack itself calls
(signed by the Slack app, no API key): button interactions and the ``/dd0c`` command.

The bot token and signing secret are write-only: they are stored encrypted and shown
as ``"set"``. Slack's own requests are answered 200 with an ephemeral message to the
person who clicked or typed, as Slack expects; a request no tenant's signing secret
verifies is refused with 401 and changes nothing (``pipeline/slack_actions.py``).

Each verified request is acted on once. A second use of it (same timestamp and
signature) changes nothing: Slack's own retry (``X-Slack-Retry-Num``: our first answer
took over 3 s) gets a 200 saying so, since the click did happen and an error would
tell the person it failed; any other repeat is a replay and gets 401 ``replayed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dd0c_alert.pipeline import slack_actions
from dd0c_alert.pipeline.runtime import Runtime

from .audit import audit
from .permissions import Principal, require
from .responses import error_response, json_response
from .routing import JsonRoute

router = APIRouter(prefix="/v1", tags=["slack"], route_class=JsonRoute)

Secret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class SlackSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_token: Secret = Field(description="The app's Bot User OAuth Token (xoxb-…).")
    signing_secret: Secret = Field(description="From the app's Basic Information page.")
    default_channel: str = Field(
        max_length=100,
        description="'#name' or a channel id: gets every paging incident no route picks up.",
    )


class SlackSettingsOut(BaseModel):
    configured: bool
    default_channel: str | None
    team_id: str | None = Field(description="The workspace, when Slack could be asked.")
    bot_token: Literal["set"] | None
    signing_secret: Literal["set"] | None


class SlackSettingsSaved(SlackSettingsOut):
    token_check: Literal["ok", "unreachable"] = Field(
        description="ok: Slack's auth.test accepted the token; unreachable: Slack could not "
        "be asked (offline install), the settings are stored all the same."
    )


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("/slack", response_model=SlackSettingsOut, summary="Slack settings (no secrets)")
async def get_slack(
    request: Request, principal: Annotated[Principal, require("config:read")]
) -> dict[str, Any]:
    return await run_in_threadpool(
        slack_actions.slack_view, _runtime(request).notify_settings, principal.tenant_id
    )


@router.put(
    "/slack",
    response_model=SlackSettingsSaved,
    summary="Set the Slack bot token, signing secret and default channel",
    responses={422: {"description": "Malformed channel, or Slack refused the token."}},
)
async def put_slack(
    request: Request,
    principal: Annotated[Principal, require("config:write")],
    body: SlackSettingsIn,
) -> Response | dict[str, Any]:
    runtime = _runtime(request)
    try:
        check = await slack_actions.configure_slack(
            runtime.notify_settings,
            principal.tenant_id,
            bot_token=body.bot_token,
            signing_secret=body.signing_secret,
            default_channel=body.default_channel,
            slack_api_url=runtime.slack_api_url,
        )
    except ValueError as exc:
        return error_response(422, "invalid_request", str(exc))
    view = await run_in_threadpool(
        slack_actions.slack_view, runtime.notify_settings, principal.tenant_id
    )
    detail = {"default_channel": body.default_channel}  # never the token or the secret
    await audit(request, principal, "slack.configure", "slack", principal.tenant_id, detail)
    return {**view, "token_check": check}


# --------------------------------------------------------------------------- from Slack

SlackTimestamp = Annotated[str, Header(alias="X-Slack-Request-Timestamp")]
SlackSignature = Annotated[str, Header(alias="X-Slack-Signature")]
SlackRetry = Annotated[str, Header(alias="X-Slack-Retry-Num")]
_SIGNED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "missing_signature, timestamp_expired, signature_mismatch, or "
        "replayed: this signed request was already used (a retry from Slack, with "
        "X-Slack-Retry-Num, gets 200 instead and is not applied again)."
    }
}
_ALREADY_DONE = "Slack sent this request again; it was already received and is not applied twice."


def _client(request: Request) -> str:
    """The address the request came from, for the audit log (as ``audit`` records it)."""
    return request.client.host if request.client is not None else ""


def _ephemeral(text: str) -> Response:
    return json_response({"response_type": "ephemeral", "replace_original": False, "text": text})


def _refused(exc: slack_actions.SlackRefused) -> Response:
    details = {
        "missing_signature": "X-Slack-Request-Timestamp and X-Slack-Signature are required",
        "timestamp_expired": "the request timestamp is more than 300 s away from now",
        "signature_mismatch": "no Slack signing secret configured here verifies this request",
        "replayed": "this signed request was already used once; a replay is not acted on",
    }
    return error_response(401, exc.reason, details[exc.reason])


def _refused_or_retried(exc: slack_actions.SlackRefused, retry: str) -> Response:
    """A used request sent again by Slack itself is no failure for the person who
    clicked (the first one was acted on): 200, nothing applied again."""
    if exc.reason == "replayed" and retry:
        return _ephemeral(_ALREADY_DONE)
    return _refused(exc)


async def _claim(runtime: Runtime, timestamp: str, signature: str) -> str:
    return await run_in_threadpool(
        slack_actions.claim_once, runtime.slack_requests, timestamp, signature
    )


async def _once(runtime: Runtime, key: str, work: Callable[[], str]) -> Response:
    """Do a claimed request's work; should it fail, the claim goes, so that Slack's
    retry of the request can still do it."""
    try:
        text = await run_in_threadpool(work)
    except BaseException:
        await run_in_threadpool(runtime.slack_requests.release, key)
        raise
    return _ephemeral(text)


@router.post(
    "/slack/interactions",
    responses=_SIGNED,
    summary="Slack button clicks (signed by the Slack app)",
)
async def interactions(
    request: Request,
    timestamp: SlackTimestamp = "",
    signature: SlackSignature = "",
    retry: SlackRetry = "",
) -> Response:
    body = await request.body()
    runtime = _runtime(request)
    team_id, payload = slack_actions.interaction_team(body)
    try:
        tenants = await run_in_threadpool(
            slack_actions.verified_tenants,
            runtime.notify_settings,
            team_id,
            body,
            timestamp,
            signature,
            time.time(),
        )
        key = await _claim(runtime, timestamp, signature)
    except slack_actions.SlackRefused as exc:
        return _refused_or_retried(exc, retry)
    click = slack_actions.click_of(payload)
    if click is None:
        return Response(status_code=200)
    actions = slack_actions.SlackActions(runtime.store, _client(request))
    return await _once(runtime, key, lambda: actions.click(tenants, click))


@router.post(
    "/slack/commands",
    responses=_SIGNED,
    summary="The /dd0c slash command (signed by the Slack app)",
)
async def commands(
    request: Request,
    timestamp: SlackTimestamp = "",
    signature: SlackSignature = "",
    retry: SlackRetry = "",
) -> Response:
    body = await request.body()
    runtime = _runtime(request)
    form = slack_actions.command_form(body)
    try:
        tenants = await run_in_threadpool(
            slack_actions.verified_tenants,
            runtime.notify_settings,
            form.get("team_id", ""),
            body,
            timestamp,
            signature,
            time.time(),
        )
        key = await _claim(runtime, timestamp, signature)
    except slack_actions.SlackRefused as exc:
        return _refused_or_retried(exc, retry)
    user = slack_actions.SlackUser(form.get("user_id", "unknown"), form.get("user_name", ""))
    actions = slack_actions.SlackActions(runtime.store, _client(request))
    return await _once(runtime, key, lambda: actions.command(tenants, form.get("text", ""), user))

"""Integrations of the caller's tenant: create (URL, secret shown once, the tool's
setup snippet), list, read with delivery counts, rename, disable, rotate the secret
(the old one stays valid for ``DD0C_SECRET_ROTATION_GRACE_SECONDS``), delete, and
send a realistic test alert through the real webhook path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from dd0c_alert.pipeline.ingest import Rejected
from dd0c_alert.pipeline.integrations import change_integration, new_secret, webhook_url
from dd0c_alert.pipeline.sample_alert import sample_delivery
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.setup_snippets import snippet
from dd0c_alert.storage.ports import Integration, RotationInProgress, Store

from .audit import audit
from .permissions import require
from .principal import Principal
from .responses import error_response
from .routing import JsonRoute

router = APIRouter(prefix="/v1", tags=["integrations"], route_class=JsonRoute)

Provider = Literal[
    "alertmanager",
    "grafana",
    "datadog",
    "pagerduty",
    "pagerduty-events",
    "opsgenie",
    "github",
    "gitlab",
    "argocd",
    "custom",
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
_NOT_FOUND = "no such integration"


class Stats(BaseModel):
    last_received_at: datetime | None
    accepted: int = Field(description="Deliveries accepted in the last 24 h.")
    rejected: dict[str, int] = Field(description="Refusals in the last 24 h by reason code.")
    dead_lettered: int = Field(description="Accepted deliveries dead-lettered in the last 24 h.")


class IntegrationOut(BaseModel):
    id: str
    provider: str
    name: str
    enabled: bool
    created_at: datetime
    webhook_url: str
    previous_secret_valid_until: datetime | None = Field(
        description="After a rotation, the old secret is accepted until then."
    )
    stats: Stats


class IntegrationCreated(IntegrationOut):
    secret: str = Field(description="Shown once.")
    setup: str = Field(description="Ready-to-paste configuration for the tool.")


class IntegrationList(BaseModel):
    items: list[IntegrationOut]


class IntegrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Provider
    name: Name | None = None


class IntegrationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    # Strict: "yes", "no", 1 and "0" were read as booleans, and "rotate_secret":
    # "no" would have rotated nothing while "yes" replaced the sender's secret.
    enabled: StrictBool | None = None
    rotate_secret: StrictBool = Field(
        default=False,
        description="A new secret (shown once); the old one is accepted until "
        "previous_secret_valid_until. Refused with 409 rotation_in_progress while an "
        "earlier rotation's old secret is still accepted.",
    )
    revoke_previous_secret: StrictBool = Field(
        default=False,
        description="For a leaked secret: no previous secret is accepted from now on. "
        "Alone, it ends a rotation's grace; with rotate_secret, the rotation keeps no "
        "old secret at all (senders on it are refused at once).",
    )


class TestResult(BaseModel):
    status: Literal["accepted", "duplicate"]
    event_id: str


def _store(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


def _url(request: Request, integration: Integration) -> str:
    return webhook_url(str(request.base_url), integration)


_EMPTY: dict[str, Any] = {
    "last_received_at": None,
    "accepted": 0,
    "rejected": {},
    "dead_lettered": 0,
}


def _render(
    request: Request, integration: Integration, stats: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    now = datetime.now(UTC)
    until = integration.previous_secret_until
    return {
        "id": integration.id,
        "provider": integration.provider,
        "name": integration.name,
        "enabled": integration.enabled,
        "created_at": integration.created_at,
        "webhook_url": _url(request, integration),
        "previous_secret_valid_until": until if until is not None and until > now else None,
        "stats": stats.get(integration.id, _EMPTY),
    }


async def _stats(request: Request, tenant_id: str) -> dict[str, dict[str, Any]]:
    product = _store(request).product()
    return await run_in_threadpool(product.integration_stats, tenant_id, datetime.now(UTC))


def _forget(request: Request, integration: Integration) -> None:
    """Changes take effect at once in this process's webhook admission."""
    request.app.state.runtime.ingest.forget_integrations(
        integration.tenant_id, integration.provider
    )


@router.get(
    "/integrations",
    response_model=IntegrationList,
    operation_id="integrations.list",
    summary="The tenant's integrations with delivery counts over 24 h",
)
async def list_integrations(
    request: Request, caller: Annotated[Principal, require("integrations:read")]
) -> dict[str, Any]:
    product = _store(request).product()
    found = await run_in_threadpool(product.list_integrations, caller.tenant_id)
    stats = await _stats(request, caller.tenant_id)
    return {"items": [_render(request, i, stats) for i in found]}


@router.post(
    "/integrations",
    response_model=IntegrationCreated,
    status_code=201,
    operation_id="integrations.create",
    summary="Create an integration: its webhook URL, secret (shown once) and setup snippet",
)
async def create_integration(
    request: Request,
    caller: Annotated[Principal, require("integrations:write")],
    body: IntegrationIn,
) -> dict[str, Any]:
    assert body.provider in PROVIDERS
    secret = new_secret()
    store = _store(request)
    integration = await run_in_threadpool(
        store.create_integration,
        caller.tenant_id,
        body.provider,
        body.name or body.provider,
        secret,
    )
    _forget(request, integration)
    await audit(
        request,
        caller,
        "integration.create",
        "integration",
        integration.id,
        {"provider": body.provider, "name": integration.name},
    )
    url = _url(request, integration)
    return {
        **_render(request, integration, {}),
        "secret": secret,
        "setup": snippet(body.provider, url, secret),
    }


async def _one(request: Request, tenant_id: str, integration_id: str) -> Integration:
    product = _store(request).product()
    found = await run_in_threadpool(product.get_integration, tenant_id, integration_id)
    if found is None:
        raise HTTPException(404, _NOT_FOUND)
    return found


@router.get(
    "/integrations/{integration_id}",
    response_model=IntegrationOut,
    operation_id="integrations.get",
    summary="One integration with its delivery counts over 24 h",
)
async def get_integration(
    request: Request,
    caller: Annotated[Principal, require("integrations:read")],
    integration_id: str,
) -> dict[str, Any]:
    integration = await _one(request, caller.tenant_id, integration_id)
    return _render(request, integration, await _stats(request, caller.tenant_id))


@router.patch(
    "/integrations/{integration_id}",
    response_model=IntegrationOut | IntegrationCreated,
    operation_id="integrations.update",
    summary="Rename, enable or disable, or rotate the secret (the new one is shown once)",
    description="A rotated-out secret is still accepted for "
    "`DD0C_SECRET_ROTATION_GRACE_SECONDS` (`previous_secret_valid_until`). Only one "
    "previous secret is kept, so another rotation before that time is refused with 409 "
    "`rotation_in_progress` (nothing in the request is applied): it would cut the first "
    "secret's grace short and refuse senders still on it before the announced time. "
    "`revoke_previous_secret` ends that grace on purpose, for a leaked secret.",
    responses={
        409: {
            "description": "rotation_in_progress: the previous secret's grace "
            "is still running; the detail says until when."
        }
    },
)
async def update_integration(
    request: Request,
    caller: Annotated[Principal, require("integrations:write")],
    integration_id: str,
    body: IntegrationPatch,
) -> Response | dict[str, Any]:
    product = _store(request).product()
    try:
        changed = await run_in_threadpool(
            lambda: change_integration(
                product,
                caller.tenant_id,
                integration_id,
                grace=request.app.state.runtime.rotation_grace,
                name=body.name,
                enabled=body.enabled,
                rotate=body.rotate_secret,
                revoke_previous=body.revoke_previous_secret,
            )
        )
    except RotationInProgress as exc:
        return error_response(409, "rotation_in_progress", str(exc))
    if changed is None:
        raise HTTPException(404, _NOT_FOUND)
    updated, secret = changed
    _forget(request, updated)
    detail = body.model_dump(exclude_none=True)
    await audit(request, caller, "integration.update", "integration", updated.id, detail)
    rendered = _render(request, updated, await _stats(request, caller.tenant_id))
    if secret is not None:
        url = _url(request, updated)
        rendered |= {"secret": secret, "setup": snippet(updated.provider, url, secret)}
    return rendered


@router.delete(
    "/integrations/{integration_id}",
    status_code=204,
    operation_id="integrations.delete",
    summary="Delete an integration: its webhooks are refused from now on",
)
async def delete_integration(
    request: Request,
    caller: Annotated[Principal, require("integrations:write")],
    integration_id: str,
) -> Response:
    integration = await _one(request, caller.tenant_id, integration_id)
    product = _store(request).product()
    await run_in_threadpool(product.delete_integration, caller.tenant_id, integration_id)
    _forget(request, integration)
    detail = {"provider": integration.provider, "name": integration.name}
    await audit(request, caller, "integration.delete", "integration", integration_id, detail)
    return Response(status_code=204)


@router.post(
    "/integrations/{integration_id}/test",
    response_model=TestResult,
    status_code=202,
    operation_id="integrations.test",
    responses={409: {"description": "The webhook path refused the sample (e.g. disabled)."}},
    summary="Send a realistic sample delivery of the provider through the real webhook path",
)
async def test_integration(
    request: Request,
    caller: Annotated[Principal, require("integrations:write")],
    integration_id: str,
) -> Response | dict[str, Any]:
    integration = await _one(request, caller.tenant_id, integration_id)
    headers, body = sample_delivery(integration)
    ingest = request.app.state.runtime.ingest
    try:
        outcome = await ingest.receive(
            caller.tenant_id, integration.provider, integration.id, headers, body
        )
    except Rejected as exc:
        return error_response(409, exc.reason, f"the webhook path refused it: {exc.detail}")
    await audit(request, caller, "integration.test", "integration", integration_id)
    status = "duplicate" if outcome.duplicate else "accepted"
    return {"status": status, "event_id": outcome.event_id}

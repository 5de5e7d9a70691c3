"""How the caller's tenant wants its alerts correlated: service topology, settings,
silences and inhibition rules.

The worker re-reads a tenant's configuration every few seconds
(``pipeline.worker.CONFIG_TTL_SECONDS``), so a change applies to alerts processed
from then on; incidents already formed are not regrouped.

Rules are validated strictly on the way in, with the parser's own message, because a
rule that is stored broken would silently match nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from dd0c_alert.correlation.model import (
    SETTING_BOUNDS,
    InhibitRule,
    Matcher,
    Rules,
    Silence,
    settings_dict,
    settings_from,
)
from dd0c_alert.correlation.rules import (
    check_silence_matchers,
    format_matchers,
    parse_matchers,
    parse_schedule,
    zone_named,
)
from dd0c_alert.domain.ids import new_id
from dd0c_alert.pipeline.limits import (
    ApiLimits,
    LimitExceeded,
    check_never_suppress,
    check_topology,
)
from dd0c_alert.storage.ports import Store

from .audit import audit
from .permissions import Principal, require
from .responses import error_response
from .routing import JsonRoute
from .types import ApiTime

router = APIRouter(prefix="/v1", tags=["configuration"], route_class=JsonRoute)

ServiceName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


def _store(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


def _limits(request: Request) -> ApiLimits:
    limits: ApiLimits = request.app.state.runtime.api_limits
    return limits


def _over(exc: LimitExceeded) -> Response:
    return error_response(422, "limit_exceeded", str(exc))


# --------------------------------------------------------------------------- topology


class Topology(BaseModel):
    """``service -> the services it depends on``. A service that depends on nothing
    need not be listed."""

    model_config = ConfigDict(extra="forbid")

    dependencies: dict[ServiceName, list[ServiceName]]

    @field_validator("dependencies")
    @classmethod
    def _no_self_dependency(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for service, upstreams in value.items():
            if service in upstreams:
                raise ValueError(f"{service!r} cannot depend on itself")
        return value


def topology_of(rules: Rules) -> dict[str, list[str]]:
    """The stored dependencies in one stable shape: services and upstreams sorted."""
    return {service: sorted(ups) for service, ups in sorted(rules.dependencies.items())}


@router.get("/topology", response_model=Topology, summary="Declared service dependencies")
async def get_topology(
    request: Request, principal: Annotated[Principal, require("config:read")]
) -> dict[str, Any]:
    _, rules = await run_in_threadpool(_store(request).tenant_config, principal.tenant_id)
    return {"dependencies": topology_of(rules)}


@router.put(
    "/topology",
    response_model=Topology,
    summary="Replace the declared service dependencies",
)
async def put_topology(
    request: Request, principal: Annotated[Principal, require("config:write")], body: Topology
) -> Response | dict[str, Any]:
    try:
        check_topology(body.dependencies, _limits(request))
    except LimitExceeded as exc:
        return _over(exc)
    store = _store(request)
    await run_in_threadpool(store.set_dependencies, principal.tenant_id, body.dependencies)
    services = {"services": len(body.dependencies)}
    await audit(request, principal, "topology.replace", "topology", principal.tenant_id, services)
    _, rules = await run_in_threadpool(store.tenant_config, principal.tenant_id)
    return {"dependencies": topology_of(rules)}


# --------------------------------------------------------------------------- settings


class Features(BaseModel):
    topology: bool
    deploys: bool
    flapping: bool
    inhibition: bool


class CorrelationSettings(BaseModel):
    correlation_window_seconds: int
    max_incident_span_seconds: int
    deploy_lookback_seconds: int
    flap_threshold: int
    flap_window_seconds: int
    governance_mode: Literal["audit", "strict"]
    never_suppress_services: list[str]
    auto_resolve: bool
    features: Features
    time_zone: str = Field(
        description="The team's clock (an IANA name): its daily digest covers its calendar"
        " day and goes out after DD0C_DIGEST_HOUR on it."
    )


def _without_null(schema: dict[str, Any]) -> None:
    """The schema of a patch says what ``_no_nulls`` enforces: a key is optional, never
    ``null``. pydantic writes ``X | None = None`` as "X or null, default null", so
    clients (and schemathesis) sent ``null`` and were refused with 422."""
    for prop in schema.get("properties", {}).values():
        kept = [branch for branch in prop.get("anyOf", ()) if branch != {"type": "null"}]
        if "anyOf" in prop and len(kept) == 1:
            del prop["anyOf"]
            prop.update(kept[0])
        if prop.get("default", ...) is None:
            del prop["default"]


class _Patch(BaseModel):
    """A partial update: only the keys given change; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_without_null)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        """``null`` is not a setting: leave a key out to keep its value."""
        if isinstance(value, Mapping):
            for key, item in value.items():
                if item is None:
                    raise ValueError(f"{key} may not be null (leave it out to keep its value)")
        return value


class FeaturesPatch(_Patch):
    topology: bool | None = None
    deploys: bool | None = None
    flapping: bool | None = None
    inhibition: bool | None = None


def _bounded(name: str) -> Any:
    low, high = SETTING_BOUNDS[name]
    return Field(default=None, ge=low, le=high)


class SettingsPatch(_Patch):
    """Bounds (``SETTING_BOUNDS``) keep the engine meaningful."""

    correlation_window_seconds: int | None = _bounded("correlation_window_seconds")
    max_incident_span_seconds: int | None = _bounded("max_incident_span_seconds")
    deploy_lookback_seconds: int | None = _bounded("deploy_lookback_seconds")
    flap_threshold: int | None = _bounded("flap_threshold")
    flap_window_seconds: int | None = _bounded("flap_window_seconds")
    governance_mode: Literal["audit", "strict"] | None = None
    never_suppress_services: list[ServiceName] | None = Field(default=None, max_length=10_000)
    auto_resolve: bool | None = None
    features: FeaturesPatch | None = None
    time_zone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone_named(value)
        return value


@router.get(
    "/settings", response_model=CorrelationSettings, summary="Correlation settings and time zone"
)
async def get_settings(
    request: Request, principal: Annotated[Principal, require("config:read")]
) -> dict[str, Any]:
    settings, _ = await run_in_threadpool(_store(request).tenant_config, principal.tenant_id)
    return settings_dict(settings)


@router.patch(
    "/settings",
    response_model=CorrelationSettings,
    summary="Change some correlation settings",
    responses={422: {"description": "Unknown key, wrong type or out of bounds."}},
)
async def patch_settings(
    request: Request, principal: Annotated[Principal, require("config:write")], body: SettingsPatch
) -> Response | dict[str, Any]:
    store = _store(request)
    changes = body.model_dump(exclude_unset=True)
    try:
        check_never_suppress(changes.get("never_suppress_services", ()), _limits(request))
    except LimitExceeded as exc:
        return _over(exc)
    current, _ = await run_in_threadpool(store.tenant_config, principal.tenant_id)
    merged = settings_from(current, changes)
    if merged.max_incident_span_seconds < merged.correlation_window_seconds:
        return error_response(
            422,
            "invalid_request",
            f"max_incident_span_seconds ({merged.max_incident_span_seconds}) must be at least "
            f"correlation_window_seconds ({merged.correlation_window_seconds})",
        )
    updated = await run_in_threadpool(store.update_settings, principal.tenant_id, changes)
    await audit(request, principal, "settings.update", "settings", principal.tenant_id, changes)
    return settings_dict(updated)


# --------------------------------------------------------------------------- rules


class MatcherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: LabelName
    op: Literal["=", "!=", "=~", "!~"]
    value: str


MatchersIn = Annotated[
    str | list[MatcherIn],
    Field(
        description='Alertmanager matchers, as text (`{service="db", severity=~"high|critical"}`) '
        "or a list of {name, op, value}; at least one.",
        examples=['{service="db"}'],
    ),
]


def matchers_of(value: str | list[MatcherIn]) -> tuple[Matcher, ...]:
    """Parse and check; ``ValueError`` with the parser's message. An empty list would
    match every alert, so at least one matcher is required."""
    text = (
        value
        if isinstance(value, str)
        else format_matchers(Matcher(m.name, m.op, m.value) for m in value)
    )
    if "\x00" in text:  # PostgreSQL text cannot hold it: refused alike on either store
        raise ValueError("matchers may not contain a NUL character")
    parsed = parse_matchers(text)
    if not parsed:
        raise ValueError("at least one matcher is required (none would match every alert)")
    return parsed


def silence_matchers_of(value: str | list[MatcherIn]) -> tuple[Matcher, ...]:
    """:func:`matchers_of` for a silence, which must also not match every alert: at
    least one matcher must not match the empty string (as Alertmanager insists)."""
    matchers = matchers_of(value)
    check_silence_matchers(matchers)
    return matchers


def _check_matchers(matchers: tuple[Matcher, ...], limits: ApiLimits) -> None:
    if len(matchers) > limits.max_matchers_per_rule:
        raise LimitExceeded(
            f"{len(matchers)} matchers in one rule",
            limits.max_matchers_per_rule,
            "DD0C_MAX_MATCHERS_PER_RULE",
        )


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: MatchersIn
    starts_at: ApiTime | None = None
    ends_at: ApiTime | None = None
    schedule: str = Field(
        default="",
        max_length=200,
        description='Recurring window, e.g. "sat,sun 02:00-04:00" or "mon-fri 22:00-06:00"; UTC'
        ' unless a clause names the zone: "TZ=Europe/Berlin; mon-fri 22:00-06:00"',
    )
    author: str = Field(default="", max_length=200)
    comment: str = Field(default="", max_length=4000)

    @field_validator("matchers")
    @classmethod
    def _valid_matchers(cls, value: str | list[MatcherIn]) -> str | list[MatcherIn]:
        silence_matchers_of(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        if value.strip():
            parse_schedule(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> SilenceIn:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at and self.ends_at <= datetime.now(UTC):  # as Alertmanager refuses it
            raise ValueError("ends_at is in the past: the silence could never apply")
        return self


class SilenceOut(BaseModel):
    id: str
    matchers: str = Field(description="Canonical matcher text.")
    starts_at: datetime | None
    ends_at: datetime | None
    schedule: str
    author: str
    comment: str
    created_at: datetime
    active: bool = Field(description="In force right now.")


class SilenceList(BaseModel):
    items: list[SilenceOut]


class InhibitionIn(BaseModel):
    """When a firing alert matches ``source``, alerts matching ``target`` with the same
    values for the ``equal`` labels are inhibited."""

    model_config = ConfigDict(extra="forbid")

    source: MatchersIn
    target: MatchersIn
    equal: list[LabelName] = Field(default=[], max_length=50)

    @field_validator("source", "target")
    @classmethod
    def _valid_matchers(cls, value: str | list[MatcherIn]) -> str | list[MatcherIn]:
        matchers_of(value)
        return value

    @field_validator("equal")
    @classmethod
    def _no_nul(cls, value: list[str]) -> list[str]:
        if any("\x00" in name for name in value):  # nor can PostgreSQL's JSONB
            raise ValueError("label names may not contain a NUL character")
        return value


def _inhibit_rule(rule_id: str, body: InhibitionIn, limits: ApiLimits) -> InhibitRule:
    """The rule the body describes; LimitExceeded past the matchers' cap."""
    source, target = matchers_of(body.source), matchers_of(body.target)
    _check_matchers(source, limits)
    _check_matchers(target, limits)
    return InhibitRule(id=rule_id, source=source, target=target, equal=tuple(body.equal))


class InhibitionOut(BaseModel):
    id: str
    source: str
    target: str
    equal: list[str]
    created_at: datetime


class InhibitionList(BaseModel):
    items: list[InhibitionOut]


@router.get("/silences", response_model=SilenceList, tags=["rules"], summary="Silences")
async def list_silences(
    request: Request, principal: Annotated[Principal, require("config:read")]
) -> dict[str, Any]:
    return {"items": await run_in_threadpool(_store(request).list_silences, principal.tenant_id)}


@router.post(
    "/silences",
    response_model=SilenceOut,
    status_code=201,
    tags=["rules"],
    summary="Create a silence or maintenance window",
)
async def create_silence(
    request: Request, principal: Annotated[Principal, require("config:write")], body: SilenceIn
) -> Response | dict[str, Any]:
    limits = _limits(request)
    matchers = silence_matchers_of(body.matchers)
    try:
        _check_matchers(matchers, limits)
        existing = await run_in_threadpool(_store(request).list_silences, principal.tenant_id)
        if len(existing) >= limits.max_silences:
            raise LimitExceeded("too many silences", limits.max_silences, "DD0C_MAX_SILENCES")
    except LimitExceeded as exc:
        return _over(exc)
    silence = _silence(new_id(), matchers, body)
    made = await run_in_threadpool(_store(request).create_silence, principal.tenant_id, silence)
    detail = {"matchers": made.get("matchers"), "comment": body.comment}
    await audit(request, principal, "silence.create", "silence", str(made["id"]), detail)
    return made


def _silence(silence_id: str, matchers: tuple[Matcher, ...], body: SilenceIn) -> Silence:
    return Silence(
        id=silence_id,
        matchers=matchers,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        schedule=body.schedule.strip(),
        author=body.author,
        comment=body.comment,
    )


@router.put(
    "/silences/{silence_id}",
    response_model=SilenceOut,
    tags=["rules"],
    summary="Replace a silence (extend a maintenance window that runs long, say)",
    responses={404: {"description": "No such silence in the caller's tenant."}},
)
async def replace_silence(
    request: Request,
    principal: Annotated[Principal, require("config:write")],
    silence_id: str,
    body: SilenceIn,
) -> Response | dict[str, Any]:
    """The whole silence as for ``POST /v1/silences``; its id stays, so decisions and
    the audit log keep naming it. Alerts already held back stay held back; from now on
    the new matchers and times apply."""
    matchers = silence_matchers_of(body.matchers)
    try:
        _check_matchers(matchers, _limits(request))
    except LimitExceeded as exc:
        return _over(exc)
    silence = _silence(silence_id, matchers, body)
    store = _store(request)
    updated = await run_in_threadpool(store.update_silence, principal.tenant_id, silence)
    if updated is None:
        raise HTTPException(404, "no such silence")
    detail = {
        "matchers": updated.get("matchers"),
        "ends_at": updated.get("ends_at"),
        "comment": body.comment,
    }
    await audit(request, principal, "silence.update", "silence", silence_id, detail)
    return updated


@router.delete(
    "/silences/{silence_id}", status_code=204, tags=["rules"], summary="Delete a silence"
)
async def delete_silence(
    request: Request, principal: Annotated[Principal, require("config:write")], silence_id: str
) -> Response:
    if not await run_in_threadpool(
        _store(request).delete_rule, principal.tenant_id, "silence", silence_id
    ):
        raise HTTPException(404, "no such silence")
    await audit(request, principal, "silence.delete", "silence", silence_id)
    return Response(status_code=204)


@router.get(
    "/inhibitions", response_model=InhibitionList, tags=["rules"], summary="Inhibition rules"
)
async def list_inhibitions(
    request: Request, principal: Annotated[Principal, require("config:read")]
) -> dict[str, Any]:
    return {"items": await run_in_threadpool(_store(request).list_inhibitions, principal.tenant_id)}


@router.post(
    "/inhibitions",
    response_model=InhibitionOut,
    status_code=201,
    tags=["rules"],
    summary="Create an inhibition rule",
)
async def create_inhibition(
    request: Request, principal: Annotated[Principal, require("config:write")], body: InhibitionIn
) -> Response | dict[str, Any]:
    limits = _limits(request)
    try:
        rule = _inhibit_rule(new_id(), body, limits)
        existing = await run_in_threadpool(_store(request).list_inhibitions, principal.tenant_id)
        if len(existing) >= limits.max_inhibitions:
            raise LimitExceeded(
                "too many inhibition rules", limits.max_inhibitions, "DD0C_MAX_INHIBITIONS"
            )
    except LimitExceeded as exc:
        return _over(exc)
    made = await run_in_threadpool(_store(request).create_inhibition, principal.tenant_id, rule)
    await audit(request, principal, "inhibition.create", "inhibition", str(made["id"]))
    return made


@router.put(
    "/inhibitions/{rule_id}",
    response_model=InhibitionOut,
    tags=["rules"],
    summary="Replace an inhibition rule's source, target and equal labels",
    responses={404: {"description": "No such rule in the caller's tenant."}},
)
async def replace_inhibition(
    request: Request,
    principal: Annotated[Principal, require("config:write")],
    rule_id: str,
    body: InhibitionIn,
) -> Response | dict[str, Any]:
    try:
        rule = _inhibit_rule(rule_id, body, _limits(request))
    except LimitExceeded as exc:
        return _over(exc)
    store = _store(request)
    updated = await run_in_threadpool(store.update_inhibition, principal.tenant_id, rule)
    if updated is None:
        raise HTTPException(404, "no such inhibition rule")
    detail = {key: updated[key] for key in ("source", "target", "equal")}
    await audit(request, principal, "inhibition.update", "inhibition", rule_id, detail)
    return updated


@router.delete(
    "/inhibitions/{rule_id}",
    status_code=204,
    tags=["rules"],
    summary="Delete an inhibition rule",
)
async def delete_inhibition(
    request: Request, principal: Annotated[Principal, require("config:write")], rule_id: str
) -> Response:
    if not await run_in_threadpool(
        _store(request).delete_rule, principal.tenant_id, "inhibition", rule_id
    ):
        raise HTTPException(404, "no such inhibition rule")
    await audit(request, principal, "inhibition.delete", "inhibition", rule_id)
    return Response(status_code=204)

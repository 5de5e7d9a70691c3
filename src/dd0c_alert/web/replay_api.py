"""What-if replay over HTTP: ``POST /v1/replay`` re-runs the caller's stored alerts
through a proposed configuration and reports it beside what actually happened.
Nothing is written."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from dd0c_alert.domain.times import InvalidTime
from dd0c_alert.pipeline.limits import LimitExceeded, check_proposal
from dd0c_alert.pipeline.replay import ReplayBusy, parse_proposal, replay

from .permissions import Principal, require
from .responses import error_response
from .routing import JsonRoute
from .types import ApiTime

router = APIRouter(prefix="/v1", tags=["replay"], route_class=JsonRoute)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: ApiTime = Field(description="Replay alerts that started at or after this time.")
    until: ApiTime | None = Field(default=None, description="...and before this one (now).")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings to override, as in PATCH /v1/settings.",
    )
    dependencies: dict[str, list[str]] | None = Field(
        default=None, description="Replaces the declared topology: service -> what it needs."
    )
    topology: dict[str, Any] | None = Field(
        default=None, description="Alias of ``dependencies``; the body of PUT /v1/topology too."
    )
    silences: list[dict[str, Any]] | None = Field(
        default=None,
        description='Replace the silences: [{"matchers": "{service=\\"x\\"}", "starts_at", '
        '"ends_at", "schedule", "comment"}].',
    )
    inhibitions: list[dict[str, Any]] | None = Field(
        default=None,
        description='Replace the inhibition rules: [{"source": "…", "target": "…", '
        '"equal": ["…"]}].',
    )


class Side(BaseModel):
    incidents: int
    pages: int
    alerts_suppressed: int
    suppressed_by: dict[str, int] = Field(description="Rule id -> alerts it suppressed.")
    alerts_would_suppress: int = Field(description="Audit mode: what strict mode would suppress.")
    would_suppress_by: dict[str, int]


class Fate(BaseModel):
    paged: bool = Field(description="The alert's own decision paged.")
    incident_paged: bool = Field(description="The incident it is in paged at all.")
    suppressed_by: str | None
    would_suppress: str | None
    incident_id: str | None


class CriticalAlert(BaseModel):
    alert_id: str
    title: str
    service: str
    started_at: datetime
    actual: Fate
    proposed: Fate


class GroupingDifference(BaseModel):
    change: Literal["merged", "split"]
    actual: str | list[str]
    proposed: str | list[str]
    alerts: int


class Grouping(BaseModel):
    unchanged: int = Field(description="Actual incidents replayed with exactly their alerts.")
    merged: int = Field(description="Proposed incidents holding alerts of several actual ones.")
    split: int = Field(description="Actual incidents whose alerts spread over several.")
    differences: list[GroupingDifference]
    truncated: bool


class ReplayIncident(BaseModel):
    id: str = Field(description="A replay-only id (replay-N): nothing is stored.")
    title: str
    severity: str
    services: list[str]
    probable_root: str
    alert_count: int
    paged: bool
    status: str
    first_at: datetime
    last_at: datetime
    deploys: list[str]
    actual_incidents: list[str]


class Configuration(BaseModel):
    changed: list[str] = Field(description="What the proposal overrode.")
    settings: dict[str, Any]
    dependencies: dict[str, list[str]]
    silences: int
    inhibitions: int


class ReplayReport(BaseModel):
    tenant_id: str
    since: datetime
    until: datetime
    alerts: int = Field(description="Stored alerts replayed.")
    configuration: Configuration
    actual: Side = Field(description="What happened, from the decision log.")
    proposed: Side = Field(description="What the proposed configuration would have done.")
    critical_alerts_affected: list[CriticalAlert] = Field(
        description="Critical alerts whose paging or suppression would change."
    )
    grouping: Grouping
    incidents: list[ReplayIncident]
    notes: list[str]


@router.post(
    "/replay",
    response_model=ReplayReport,
    summary="What if: replay stored alerts through a proposed configuration",
    responses={
        422: {"description": "Invalid proposal, or too many alerts in the range."},
        429: {
            "description": "`busy`: another replay is running in this process (one at a "
            "time: each holds its range in memory); try again after `Retry-After`."
        },
    },
)
async def post_replay(
    request: Request, principal: Annotated[Principal, require("config:write")], body: ReplayRequest
) -> Response | dict[str, Any]:
    doc = body.model_dump(exclude={"since", "until"}, exclude_none=True)
    store = request.app.state.runtime.store
    try:
        proposal = parse_proposal(doc)
        check_proposal(proposal, request.app.state.runtime.api_limits)
        report: dict[str, Any] = await run_in_threadpool(
            replay, store, principal.tenant_id, body.since, body.until, proposal
        )
    except InvalidTime as exc:
        return error_response(422, "invalid_time", str(exc))
    except LimitExceeded as exc:
        return error_response(422, "limit_exceeded", str(exc))
    except ReplayBusy:
        return error_response(
            429, "busy", "another replay is running here: try again shortly", {"Retry-After": "10"}
        )
    except ValueError as exc:
        return error_response(422, "invalid_request", str(exc))
    return report

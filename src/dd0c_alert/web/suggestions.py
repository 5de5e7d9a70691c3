"""Suggestions of the caller's tenant (design §6.9): list them, accept one (it becomes
a rule) or dismiss it. A suggestion is decided once: deciding it again answers 409
``already_decided``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dd0c_alert.pipeline import suggest
from dd0c_alert.storage.ports import Page, Store, SuggestionVerdict

from .audit import audit
from .permissions import Principal, require
from .responses import error_response
from .routing import JsonRoute

router = APIRouter(prefix="/v1", tags=["suggestions"], route_class=JsonRoute)

Kind = Literal["tune", "silence", "link", "unlink", "deploy_grace"]
Status = Literal["open", "accepted", "dismissed", "expired"]
_NOT_FOUND = "no such suggestion"
_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: {"description": "The tenant has no such suggestion."},
    409: {"description": "The suggestion was already decided: nothing changed."},
}


class Citation(BaseModel):
    """One merge (``incident_id`` merged into ``other_id``) or split (alerts of
    ``incident_id`` moved out into ``other_id``) a person made."""

    kind: Literal["merge", "split"]
    incident_id: str
    other_id: str
    at: datetime


class Suggestion(BaseModel):
    """A proposal computed from the tenant's history by the scheduled job.

    ``tune``: a fingerprint that fires often and never needed anyone (proposal: mute
    it for a while). ``silence``: one that only fires in a recurring window (proposal:
    a recurring silence). ``link``: two services that alert together without a
    declared dependency, or whose incidents people keep merging (proposal: declare
    it). ``unlink``: a declared dependency people keep undoing by splitting incidents
    (proposal: remove it). ``deploy_grace``: a service whose
    alerts mostly follow its own deploys (proposal: a grace window; the engine has no
    such rule yet, so accepting it creates nothing).
    """

    id: str
    kind: Kind
    key: str = Field(description="What it is about: a fingerprint, a service pair, a service.")
    title: str
    evidence: dict[str, int] = Field(description="The counts it is based on.")
    proposal: dict[str, Any] = Field(description="The rule accepting it would create.")
    cites: list[Citation] = Field(
        default_factory=list,
        description="The merges and splits by hand it learnt from, newest first (at most 10).",
    )
    status: Status = Field(
        description="expired: open, but the history no longer supports it; it reopens if it "
        "does again."
    )
    created_at: datetime
    decided_at: datetime | None


class SuggestionPage(BaseModel):
    items: list[Suggestion]
    next_cursor: str | None


class Verdict(BaseModel):
    suggestion: Suggestion
    applied: bool = Field(description="A rule was created.")
    rule: dict[str, Any] | None = Field(
        description="The rule created: a ``silence`` (with its id) or a ``dependency``; or "
        "the ``dependency_removed``."
    )
    note: str = Field(description="What happened, including what governance lets the rule do.")


def _store(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


@router.get("/suggestions", response_model=SuggestionPage, summary="List suggestions, newest first")
async def list_suggestions(
    request: Request,
    principal: Annotated[Principal, require("config:read")],
    status: Status | None = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    try:
        page: Page = await run_in_threadpool(
            _store(request).list_suggestions, principal.tenant_id, status, kind, limit, cursor
        )
    except ValueError as exc:  # an undecodable cursor
        raise HTTPException(400, str(exc)) from None
    return {"items": page.items, "next_cursor": page.next_cursor}


def _answer(verdict: SuggestionVerdict | None) -> Response | dict[str, Any]:
    if verdict is None:
        raise HTTPException(404, _NOT_FOUND)
    if not verdict.changed:
        return error_response(409, "already_decided", verdict.note)
    return {
        "suggestion": verdict.suggestion,
        "applied": verdict.rule is not None,
        "rule": verdict.rule,
        "note": verdict.note,
    }


@router.post(
    "/suggestions/{suggestion_id}/accept",
    response_model=Verdict,
    responses=_CONFLICT,
    summary="Accept an open suggestion: it becomes a rule",
    description="``link`` declares the dependency, ``unlink`` removes it; ``tune`` creates a "
    "silence of the fingerprint for the proposed number of days, ``silence`` a recurring one "
    "(author ``suggestion:<id>``). Silences suppress delivery only in strict governance mode "
    "(never critical alerts nor never-suppress services); in audit mode they log 'would "
    "suppress'. "
    "``deploy_grace`` creates nothing: the engine has no deploy grace window yet.",
)
async def accept(
    request: Request, principal: Annotated[Principal, require("config:write")], suggestion_id: str
) -> Response | dict[str, Any]:
    tenant = principal.tenant_id
    verdict = await run_in_threadpool(suggest.accept, _store(request), tenant, suggestion_id)
    if verdict is not None and verdict.changed:
        detail = {"kind": verdict.suggestion.get("kind"), "rule": verdict.rule is not None}
        await audit(request, principal, "suggestion.accept", "suggestion", suggestion_id, detail)
        product = _store(request).product()
        event = {"suggestion_id": suggestion_id, **detail}
        await run_in_threadpool(product.record_event, tenant, "suggestion.accepted", event)
    return _answer(verdict)


@router.post(
    "/suggestions/{suggestion_id}/dismiss",
    response_model=Verdict,
    responses=_CONFLICT,
    summary="Dismiss a suggestion: it is not proposed again",
)
async def dismiss(
    request: Request, principal: Annotated[Principal, require("config:write")], suggestion_id: str
) -> Response | dict[str, Any]:
    verdict = await run_in_threadpool(
        suggest.dismiss, _store(request), principal.tenant_id, suggestion_id
    )
    if verdict is not None and verdict.changed:
        await audit(request, principal, "suggestion.dismiss", "suggestion", suggestion_id)
    return _answer(verdict)

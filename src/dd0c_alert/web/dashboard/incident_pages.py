"""The incident list (with its live stream) and the incident page with its actions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from dd0c_alert.providers import PROVIDERS
from dd0c_alert.storage.ports import IncidentAction, IncidentFilter, InvalidTransition, Store
from dd0c_alert.storage.rows import decode_cursor

from ..audit import audit
from ..permissions import Principal, allowed
from .guard import acting, runtime_of, store_of, viewer
from .render import page, page_router, redirect, templates
from .session import field, still_signed_in_now
from .svg import service_graph

router = page_router()

STATUSES = ("open", "acknowledged", "resolved")
SEVERITIES = ("critical", "high", "medium", "low", "info")
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
SINCE |= {"30d": timedelta(days=30)}
PAGE_SIZE = 50
STREAM_SECONDS = 300.0
MESSAGES = {
    "ack": "Acknowledged.",
    "resolve": "Resolved.",
    "snooze": "Snoozed for an hour.",
    "reopen": "Reopened.",
    "noise": "Thanks: marked as noise.",
    "useful": "Thanks: marked as useful.",
    "conflict": "Nothing changed: the incident's status no longer allows that.",
    "note": "Note added.",
    "merged": "Merged: this incident now holds the other one's alerts.",
    "split": "Split: these alerts are a new incident now.",
}


@dataclass(frozen=True)
class Query:
    status: str = ""
    severity: str = ""
    service: str = ""
    since: str = ""
    source: str = ""
    q: str = ""

    @classmethod
    def of(cls, request: Request) -> Query:
        p = request.query_params
        return cls(
            status=p.get("status", "") if p.get("status") in STATUSES else "",
            severity=p.get("severity", "") if p.get("severity") in SEVERITIES else "",
            service=p.get("service", "").strip()[:200],
            since=p.get("since", "") if p.get("since") in SINCE else "",
            source=p.get("source", "") if p.get("source") in PROVIDERS else "",
            q=p.get("q", "").strip()[:200],
        )

    def filters(self) -> IncidentFilter:
        since = datetime.now(UTC) - SINCE[self.since] if self.since else None
        return IncidentFilter(
            status=self.status or None,
            severity=self.severity or None,
            service=self.service or None,
            since=since,
            source=self.source or None,
            q=self.q or None,
        )


def find(store: Store, tenant_id: str, query: Query, cursor: str | None) -> tuple[list[Any], Any]:
    """The incidents of the list, and the cursor of the next page."""
    found = store.list_incidents(tenant_id, query.filters(), PAGE_SIZE, cursor)
    return found.items, found.next_cursor


def counts(store: Store, tenant_id: str) -> dict[str, str]:
    """Incidents by status ("100+" past the first hundred)."""
    shown: dict[str, str] = {}
    for status in STATUSES:
        found = store.list_incidents(tenant_id, IncidentFilter(status=status), 100, None)
        shown[status] = f"{len(found.items)}{'+' if found.next_cursor else ''}"
    return shown


def signature(item: dict[str, Any]) -> str:
    """What changes when a row must be redrawn."""
    parts = ("status", "severity", "alert_count", "last_at", "snoozed_until", "title")
    return "|".join(str(item.get(k)) for k in parts)


BROKEN_CURSOR = "This link to older incidents is broken: start again from the first page."


def page_cursor(cursor: str | None) -> str | None:
    """The cursor of an older page, checked before any query: a broken link answers
    the dashboard's 400 page (the API answers 400 too), not a 500."""
    if not cursor:
        return None
    try:
        decode_cursor(cursor)
    except ValueError:
        raise HTTPException(400, BROKEN_CURSOR) from None
    return cursor


@router.get("/incidents")
async def incident_list(request: Request, cursor: str | None = None) -> Response:
    me, query, cursor = await viewer(request), Query.of(request), page_cursor(cursor)
    store = store_of(request)
    rows, next_cursor = await run_in_threadpool(find, store, me.tenant_id, query, cursor)
    by_state = await run_in_threadpool(counts, store, me.tenant_id)
    return page(
        request,
        "incidents.html",
        me,
        rows=rows,
        query=query,
        next_cursor=next_cursor,
        older=cursor is not None,
        counts=by_state,
        statuses=STATUSES,
        severities=SEVERITIES,
        since_choices=list(SINCE),
        sources=sorted(PROVIDERS),
        signature=signature,
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _window(rows: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    """Which rows the list holds now, so the page drops those that stopped matching
    (acknowledged on a list of open incidents, merged away): ``ids``, and ``floor``,
    the oldest of them when older pages follow. A row older than the floor is kept:
    it may only have been pushed down to the next page by newer incidents."""
    floor = rows[-1]["id"] if rows and next_cursor else ""
    return {"ids": [r["id"] for r in rows], "floor": floor}


def _news(known: dict[str, str] | None, now: dict[str, str]) -> set[str] | None:
    """The ids of the rows to send (all of them on the first look, then those whose
    signature changed); None when nothing changed, not even which rows are listed."""
    if known is None:
        return set(now)
    changed = {i for i, sig in now.items() if known.get(i) != sig}
    return changed if changed or known.keys() != now.keys() else None


async def _changes(
    request: Request, me: Principal, query: Query, cursor: str | None
) -> AsyncIterator[bytes]:
    """Every ~second: the rows of this page (``cursor``: the same older page, which
    newer incidents never enter) that changed since the last event, and which rows
    it holds (``_window``). The first event carries every row. Ends as soon as the
    viewer is no longer signed in or no longer a member (``still_signed_in_now``):
    the browser's reconnection then lands on the login page."""
    store = store_of(request)
    known: dict[str, str] | None = None
    rows_template = templates.get_template("_incident_rows.html")
    ends, quiet = time.monotonic() + STREAM_SECONDS, 0
    yield b"retry: 2000\n\n"
    while time.monotonic() < ends and not await request.is_disconnected():
        current = await still_signed_in_now(request)
        if current is None:
            return
        me = current  # its role as of now, for the rows' buttons
        rows, next_cursor = await run_in_threadpool(find, store, me.tenant_id, query, cursor)
        now = {r["id"]: signature(r) for r in rows}
        news, known = _news(known, now), now
        if news is not None:
            by_state = await run_in_threadpool(counts, store, me.tenant_id)
            changed = [r for r in rows if r["id"] in news]
            html = rows_template.render(rows=changed, me=me, signature=signature)
            data = {"html": html, "counts": by_state, **_window(rows, next_cursor)}
            yield _event("rows", data)
            quiet = 0
        elif (quiet := quiet + 1) >= 15:
            yield b": still here\n\n"
            quiet = 0
        await asyncio.sleep(1.0)


@router.get("/incidents/stream")
async def incident_stream(request: Request, cursor: str | None = None) -> Response:
    me, cursor = await viewer(request), page_cursor(cursor)
    return StreamingResponse(
        _changes(request, me, Query.of(request), cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/incidents/{incident_id}")
async def incident_page(request: Request, incident_id: str, msg: str = "") -> Response:
    me = await viewer(request)
    return await incident_view(request, me, incident_id, message=MESSAGES.get(msg, ""))


#: Open incidents offered as merge targets on the incident page.
MERGE_CHOICES = 20


def _merge_choices(store: Store, tenant_id: str, incident_id: str) -> list[dict[str, Any]]:
    found = store.list_incidents(tenant_id, IncidentFilter(status="open"), MERGE_CHOICES + 1, None)
    return [i for i in found.items if i["id"] != incident_id][:MERGE_CHOICES]


async def incident_view(
    request: Request, me: Principal, incident_id: str, status_code: int = 200, **extra: Any
) -> Response:
    """The incident page; ``extra`` adds a message or the error of a refused action."""
    store = store_of(request)
    item = await run_in_threadpool(store.get_incident, me.tenant_id, incident_id)
    if item is None:
        raise HTTPException(404, "no such incident")
    deliveries = await run_in_threadpool(
        runtime_of(request).outbox.incident_deliveries, me.tenant_id, incident_id
    )
    _, rules = await run_in_threadpool(store.tenant_config, me.tenant_id)
    graph = service_graph(item["services"], rules.dependencies, item["probable_root"])
    can_act = allowed("incidents:act", me) and not item["merged_into"]
    choices = (
        await run_in_threadpool(_merge_choices, store, me.tenant_id, incident_id) if can_act else []
    )
    return page(
        request,
        "incident.html",
        me,
        status_code,
        incident=item,
        deliveries=deliveries,
        graph=graph,
        merge_choices=choices,
        **extra,
    )


ACTIONS: dict[str, IncidentAction] = {
    "ack": "ack",
    "resolve": "resolve",
    "snooze": "snooze",
    "reopen": "reopen",
}


@router.post("/incidents/{incident_id}/{action}")
async def incident_action(request: Request, incident_id: str, action: str) -> Response:
    me, form = await acting(request, "incidents:act")
    store = store_of(request)
    if action in ("noise", "useful"):
        done = await run_in_threadpool(
            lambda: store.add_feedback(me.tenant_id, incident_id, action, actor=me.actor)  # type: ignore[arg-type]
        )
    elif action in ACTIONS:
        try:
            done = await run_in_threadpool(
                lambda: store.incident_action(
                    me.tenant_id, incident_id, ACTIONS[action], 60, actor=me.actor
                )
            )
        except InvalidTransition:
            action = "conflict"
            done = {}
    else:
        raise HTTPException(404, "no such action")
    if done is None:
        raise HTTPException(404, "no such incident")
    if action in ("noise", "useful"):
        detail = {"verdict": action}
        await audit(request, me, "incident.feedback", "incident", incident_id, detail)
    elif action != "conflict":
        await audit(request, me, f"incident.{action}", "incident", incident_id)
    back = field(form, "next")
    if back == "list":
        return redirect(request, "/incidents")
    return redirect(request, f"/incidents/{incident_id}?msg={action}")

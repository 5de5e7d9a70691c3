"""What a silence's matchers would have matched over the last days, shown before the
silence is created (and the bounded read of recent alerts that inhibition previews
share).

Matching is the worker's own (``correlation.rules``: RE2, the same label view), run
over the stored alerts newest first. The scan is bounded (``SCAN_CAP`` alerts) so a
preview costs the same on a tenant with millions of alerts; the page says when it
stopped early, and the counts are then a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from dd0c_alert.correlation.model import Matcher
from dd0c_alert.correlation.rules import format_matchers, matches_labels, stored_label_view
from dd0c_alert.storage.ports import AlertFilter, Store

from ..config_api import silence_matchers_of
from .guard import acting, runtime_of, store_of
from .render import page, page_router
from .session import field as form_field

router = page_router()

DAYS = 7
#: Alerts read at most per preview, newest first.
SCAN_CAP = 5000
_PAGE = 500
EXAMPLES = 5


@dataclass
class Preview:
    scanned: int = 0
    alerts: int = 0
    incidents: set[str] = field(default_factory=set)
    examples: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


def recent_alerts(store: Store, tenant_id: str, now: datetime) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``SCAN_CAP`` alerts started in the last ``DAYS`` days, newest first,
    and whether older ones of those days were left unread."""
    found: list[dict[str, Any]] = []
    cursor = None
    since = AlertFilter(since=now - timedelta(days=DAYS))
    while len(found) < SCAN_CAP:
        chunk = store.list_alerts(tenant_id, since, min(_PAGE, SCAN_CAP - len(found)), cursor)
        found += chunk.items
        cursor = chunk.next_cursor
        if cursor is None:
            return found, False
    return found, True


def preview(store: Store, tenant_id: str, matchers: tuple[Matcher, ...], now: datetime) -> Preview:
    """The alerts started in the last ``DAYS`` days that ``matchers`` match."""
    alerts, stopped_early = recent_alerts(store, tenant_id, now)
    found = Preview(scanned=len(alerts), stopped_early=stopped_early)
    for alert in alerts:
        if not matches_labels(matchers, stored_label_view(alert)):
            continue
        found.alerts += 1
        if alert.get("incident_id"):
            found.incidents.add(alert["incident_id"])
        if len(found.examples) < EXAMPLES:
            found.examples.append(alert)
    return found


@router.post("/settings/silences/preview")
async def silence_preview(request: Request) -> Response:
    me, form = await acting(request, "config:write")
    values = {k: form_field(form, k) for k in ("matchers", "hours", "comment")}
    try:
        matchers = silence_matchers_of(values["matchers"])
        cap = runtime_of(request).api_limits.max_matchers_per_rule
        if len(matchers) > cap:
            raise ValueError(f"{len(matchers)} matchers in one rule; the limit is {cap}")
    except ValueError as exc:
        return page(request, "silence_preview.html", me, 422, form=values, error=f"Matchers: {exc}")
    found = await run_in_threadpool(
        preview, store_of(request), me.tenant_id, matchers, datetime.now(UTC)
    )
    return page(
        request,
        "silence_preview.html",
        me,
        form=values,
        shown=format_matchers(matchers),
        found=found,
        days=DAYS,
        cap=SCAN_CAP,
    )

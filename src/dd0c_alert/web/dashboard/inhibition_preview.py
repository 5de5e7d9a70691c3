"""What an inhibition rule would have held back over the last days, shown before the
rule is saved.

The week's stored alerts (the bounded read of ``silence_preview``) are replayed: a
target alert counts when, at the moment it started, a source alert with the same
values for the ``equal`` labels had started and not yet ended. The matching and the
exclusions are the worker's (``correlation.rules.InhibitionIndex``): RE2 on the same
label view, never the alert itself, and no two alerts that match both sides holding
each other back. Governance still applies on top (critical alerts and never-suppress
services are delivered; audit mode only logs), as the page says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dd0c_alert.correlation.model import Matcher
from dd0c_alert.correlation.rules import MAX_INHIBITION_SCAN, matches_labels, stored_label_view
from dd0c_alert.storage.ports import Store

from .silence_preview import EXAMPLES, recent_alerts


@dataclass
class Inhibited:
    target: dict[str, Any]
    source: dict[str, Any]


@dataclass
class InhibitionPreview:
    scanned: int = 0
    alerts: int = 0
    incidents: set[str] = field(default_factory=set)
    examples: list[Inhibited] = field(default_factory=list)
    stopped_early: bool = False


def _at(alert: dict[str, Any], name: str) -> datetime | None:
    value = alert.get(name)
    return datetime.fromisoformat(value) if value else None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["id"] == b["id"] or a["fingerprint"] == b["fingerprint"])


@dataclass
class _Source:
    alert: dict[str, Any]
    view: dict[str, str]
    started: datetime
    ended: datetime | None

    def firing_at(self, moment: datetime) -> bool:
        return self.started <= moment and (self.ended is None or self.ended > moment)


def preview(
    store: Store,
    tenant_id: str,
    source: tuple[Matcher, ...],
    target: tuple[Matcher, ...],
    equal: list[str],
    now: datetime,
) -> InhibitionPreview:
    """The alerts of the last days this rule would have inhibited, with the source
    alert that would have held each back."""
    alerts, stopped_early = recent_alerts(store, tenant_id, now)
    found = InhibitionPreview(scanned=len(alerts), stopped_early=stopped_early)
    views = [stored_label_view(alert) for alert in alerts]
    starts = [_at(alert, "started_at") for alert in alerts]
    sources: dict[tuple[str, ...], list[_Source]] = {}
    for alert, view, started in zip(alerts, views, starts, strict=True):
        if started is not None and matches_labels(source, view):
            key = tuple(view.get(name, "") for name in equal)
            sources.setdefault(key, []).append(
                _Source(alert, view, started, _at(alert, "ended_at"))
            )
    newest_first = zip(alerts, views, starts, strict=True)
    for alert, view, moment in reversed(list(newest_first)):  # oldest first
        if moment is None or not matches_labels(target, view):
            continue
        two_sided = matches_labels(source, view)
        bucket = sources.get(tuple(view.get(name, "") for name in equal), [])
        holder = next(
            (
                candidate.alert
                for candidate in bucket[:MAX_INHIBITION_SCAN]
                if candidate.firing_at(moment)
                and not _same(candidate.alert, alert)
                and not (two_sided and matches_labels(target, candidate.view))
            ),
            None,
        )
        if holder is None:
            continue
        found.alerts += 1
        if alert.get("incident_id"):
            found.incidents.add(alert["incident_id"])
        if len(found.examples) < EXAMPLES:
            found.examples.append(Inhibited(alert, holder))
    return found

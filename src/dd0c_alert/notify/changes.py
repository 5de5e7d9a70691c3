"""Which incident changes a batch makes are worth telling people about (pure).

The worker snapshots the incidents it loaded before correlating a batch and asks,
after, what changed; each answer becomes an outbox intent in the batch transaction.
Only incidents that paged are told about: an incident whose alerts a rule suppressed
(strict governance) or that never reached a page has no message to send or update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dd0c_alert.correlation.model import IncidentState, IncidentStatus
from dd0c_alert.domain.models import Severity


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a notification shows of an incident, before the batch."""

    status: IncidentStatus
    severity: Severity
    alert_count: int
    services: frozenset[str]
    paged: bool
    merged_into: str | None
    noise_score: int

    @classmethod
    def of(cls, incident: IncidentState) -> Snapshot:
        return cls(
            incident.status,
            incident.severity,
            incident.alert_count,
            frozenset(incident.services),
            incident.paged,
            incident.merged_into,
            incident.noise_score,
        )


def changes(
    before: Mapping[str, Snapshot], incidents: Mapping[str, IncidentState], touched: set[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(incident_id, event, detail)`` for each touched incident worth telling about:
    ``opened`` when it first pages, ``merged`` when it was folded into another,
    ``resolved`` / ``reopened`` on those transitions, ``updated`` when what a message
    shows changed (alerts, severity, services, noise). Sorted, so the outbox order
    does not depend on set order."""
    told: list[tuple[str, str, dict[str, Any]]] = []
    for incident_id in sorted(touched):
        incident = incidents[incident_id]
        if not incident.paged:
            continue
        now, was = Snapshot.of(incident), before.get(incident_id)
        if now.merged_into is not None:
            if was is None or was.merged_into is None:
                told.append((incident_id, "merged", {"into": now.merged_into}))
        elif was is None or not was.paged:
            told.append((incident_id, "opened", {}))
        elif now.status is IncidentStatus.RESOLVED and was.status is not IncidentStatus.RESOLVED:
            told.append((incident_id, "resolved", {}))
        elif was.status is IncidentStatus.RESOLVED and now.status is not IncidentStatus.RESOLVED:
            told.append((incident_id, "reopened", {}))
        elif now != was:
            told.append((incident_id, "updated", {}))
    return told

"""Dedup by fingerprint: which stored alert a notification repeats, resolves or starts.

Pure: the caller loads the state of each fingerprint (its active alert and its most
recently ended one), folds the batch's notifications in order, and persists the
records that changed. Keeping this out of SQL is what lets a batch be read in one
query and written with one statement per kind, and lets the rules be tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.domain.severity import worst


class Fold(StrEnum):
    NEW = "new"  # a new occurrence: a new alert record
    REPEAT = "repeat"  # another notification of the active alert
    RESOLVE = "resolve"  # the active alert ended
    LATE_REPEAT = "late_repeat"  # a delayed copy of an occurrence that already ended
    REPEAT_RESOLVE = "repeat_resolve"  # the end of an ended occurrence, sent again


@dataclass(slots=True, kw_only=True)
class AlertRecord:
    """One occurrence of an alert as stored: its first notification's identity, with
    what later notifications added."""

    alert: CanonicalAlert
    last_seen_at: datetime
    repeat_count: int
    incident_id: str = ""
    #: A copy said the occurrence started earlier than stored: the start is rewritten
    #: only then (in every update, it would cost two index writes per repeat).
    start_moved: bool = False
    #: A notification changed what is stored of the occurrence beyond when it was last
    #: seen and how often (status, end, severity, texts, labels). A plain repeat leaves
    #: it unset, and its update writes the two counters alone.
    changed: bool = False

    @property
    def id(self) -> str:
        return self.alert.id


@dataclass(slots=True)
class FingerprintState:
    """What is known of one fingerprint: its active occurrence and its latest ended one."""

    active: AlertRecord | None = None
    last_ended: AlertRecord | None = None


@dataclass(frozen=True, slots=True)
class FoldResult:
    """``record`` is shared by every fold of one occurrence and ends the batch in its
    final state; ``alert`` is the occurrence as this notification left it, which is
    what correlation must judge (a fire and its resolve can share a batch)."""

    fold: Fold
    record: AlertRecord
    alert: CanonicalAlert
    #: The event that brought this notification (``alert`` keeps the occurrence's first).
    event_id: str
    #: When this notification arrived (``alert`` keeps the occurrence's first arrival).
    seen: datetime


def fold(state: FingerprintState, alert: CanonicalAlert) -> FoldResult:
    """Fold one notification into its fingerprint's state (which it updates); the
    result's record is the one to persist."""
    seen = alert.received_at
    moment = alert.ended_at or alert.started_at if alert.status is AlertStatus.RESOLVED else None

    # Anything no newer than the latest ended occurrence is a late copy of it (or of an
    # even older one, which the state no longer holds): folded there, never a new
    # occurrence that would stay "firing" for ever.
    ended = state.last_ended
    if ended is not None and ended.alert.ended_at is not None:
        last = ended.alert.ended_at
        if moment is None and alert.started_at <= last:
            ended.repeat_count += 1
            ended.last_seen_at = max(ended.last_seen_at, seen)
            ended.start_moved |= alert.started_at < ended.alert.started_at
            _update(ended, _late(ended.alert, alert))
            return FoldResult(Fold.LATE_REPEAT, ended, ended.alert, alert.event_id, seen)
        # A resolve repeating the end of that occurrence: at or before its end, or later
        # when it started no later than that end (Alertmanager re-sends a resolved
        # alert in later notifications of its group with a later ``endsAt`` each time;
        # an occurrence that fired since started after that end, so it is not this
        # one), or when it carries no start of its own (a Datadog recovery's only time
        # is its own) and no later occurrence was firing at its moment. The occurrence
        # keeps the latest end reported: taking the maximum makes the fold the same
        # whatever order or how many times the copies arrive, so a redelivery changes
        # nothing; the cost is an end late by at most the sender's re-send interval.
        startless = alert.started_at == moment
        active = state.active
        before_active = active is None or (moment is not None and moment < active.alert.started_at)
        resent = alert.started_at <= last or (startless and before_active)
        if moment is not None and (moment <= last or resent):
            ended.last_seen_at = max(ended.last_seen_at, seen)
            if moment > last:
                _update(ended, replace(ended.alert, ended_at=moment))
            return FoldResult(Fold.REPEAT_RESOLVE, ended, ended.alert, alert.event_id, seen)

    active = state.active
    if active is not None and (moment is None or moment >= active.alert.started_at):
        active.last_seen_at = max(active.last_seen_at, seen)
        if moment is None:
            active.repeat_count += 1
            active.start_moved |= alert.started_at < active.alert.started_at
            _update(active, _merged(active.alert, alert))
            return FoldResult(Fold.REPEAT, active, active.alert, alert.event_id, seen)
        _update(active, replace(active.alert, status=AlertStatus.RESOLVED, ended_at=moment))
        state.active, state.last_ended = None, active
        return FoldResult(Fold.RESOLVE, active, active.alert, alert.event_id, seen)

    record = AlertRecord(
        alert=alert,
        last_seen_at=seen,
        repeat_count=1 if moment is None else 0,
    )
    if moment is None:
        state.active = record
    elif active is None:  # a resolve we never saw fire: kept, nothing said is lost
        state.last_ended = record
    return FoldResult(Fold.NEW, record, alert, alert.event_id, seen)


def _update(record: AlertRecord, alert: CanonicalAlert) -> None:
    if alert is not record.alert:
        record.alert = alert
        record.changed = True


def _merged(known: CanonicalAlert, update: CanonicalAlert) -> CanonicalAlert:
    """Follow-ups often carry less than the first notification (an OpsGenie
    acknowledge has no priority, a Datadog re-notify no description): keep the worst
    severity seen and never blank out what was known."""
    return _combined(known, newer=update, older=known)


def _late(ended: CanonicalAlert, copy: CanonicalAlert) -> CanonicalAlert:
    """A firing copy delayed past the end it belongs to (a trigger delivered after its
    recovery) still says when the occurrence started and how bad it was: the earlier
    start and the worst severity are kept, as in the right order. The ended record's
    own texts are newer and win."""
    return _combined(ended, newer=ended, older=copy)


def _combined(
    record: CanonicalAlert, *, newer: CanonicalAlert, older: CanonicalAlert
) -> CanonicalAlert:
    """``record`` (its identity and state) with the earliest start, the worst severity,
    and the newer notification's texts where it has them; ``record`` itself when that
    changes nothing, as for most repeats."""
    started_at = min(newer.started_at, older.started_at)
    severity = worst(Severity(older.severity), Severity(newer.severity))
    title = newer.title or older.title
    description = newer.description or older.description
    labels = {**older.labels, **newer.labels}
    links = newer.links or older.links
    if (
        started_at == record.started_at
        and severity == record.severity
        and title == record.title
        and description == record.description
        and labels == record.labels
        and links == record.links
    ):
        return record
    return replace(
        record,
        started_at=started_at,
        severity=severity,
        title=title,
        description=description,
        labels=labels,
        links=links,
    )

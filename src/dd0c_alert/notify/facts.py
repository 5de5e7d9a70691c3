"""Wording shared by every channel, so Slack, mail and webhooks tell the same story."""

from __future__ import annotations

from datetime import UTC, datetime

from dd0c_alert.domain.models import Severity

from .model import IncidentView, NotificationEvent

SEVERITY_EMOJI: dict[Severity, str] = {
    Severity.CRITICAL: ":red_circle:",
    Severity.HIGH: ":large_orange_circle:",
    Severity.MEDIUM: ":large_yellow_circle:",
    Severity.LOW: ":large_blue_circle:",
    Severity.INFO: ":white_circle:",
}
SEVERITY_COLOUR: dict[Severity, str] = {
    Severity.CRITICAL: "#d7263d",
    Severity.HIGH: "#f46036",
    Severity.MEDIUM: "#f6c90e",
    Severity.LOW: "#2e86ab",
    Severity.INFO: "#8d99ae",
}


def utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC; aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def when(moment: datetime) -> str:
    """A fixed, unambiguous time (``2026-11-27 10:00 UTC``): messages are read in many
    time zones and must not depend on the server's locale."""
    return utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    """``42s``, ``7m 5s``, ``3h 12m``, ``2d 4h``: precise enough for an incident."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def resolved_after(incident: IncidentView) -> str | None:
    """How long the incident lasted, once resolved."""
    if incident.resolved_at is None:
        return None
    return duration((utc(incident.resolved_at) - utc(incident.opened_at)).total_seconds())


def services_text(incident: IncidentView) -> str:
    return ", ".join(incident.services) or "(no service)"


def status_line(incident: IncidentView) -> str:
    """The incident's state in one phrase, naming who acted."""
    if incident.status == "resolved":
        by = f" by {incident.resolved_by}" if incident.resolved_by else ""
        lasted = resolved_after(incident)
        return f"Resolved{by}" + (f" after {lasted}" if lasted else "")
    if incident.status == "acknowledged":
        by = f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""
        at = f" at {when(incident.acknowledged_at)}" if incident.acknowledged_at else ""
        return f"Acknowledged{by}{at}"
    if incident.status == "snoozed" and incident.snoozed_until is not None:
        return f"Snoozed until {when(incident.snoozed_until)}"
    return "Open"


def headline(incident: IncidentView, event: NotificationEvent) -> str:
    """``[CRITICAL] Checkout latency high (opened)``: the notification line."""
    return f"[{incident.severity.value.upper()}] {incident.title} ({event})"


def counts_text(incident: IncidentView) -> str:
    alerts = f"{incident.alert_count} alert" + ("" if incident.alert_count == 1 else "s")
    return f"{alerts}, {incident.dedup_count} duplicates folded"


def noise_text(incident: IncidentView) -> str:
    reasons = "; ".join(incident.noise_reasons)
    return f"{incident.noise_score}/100" + (f" ({reasons})" if reasons else "")

"""The analytics page's figures, shaped from what ``GET /v1/analytics`` answers (the
store's rollups: ``ProductStore.analytics``): one entry per day of the window, zeros
included, so the chart has a bar group for every day. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

WINDOWS = {"7d": 7, "30d": 30, "90d": 90}


@dataclass
class Summary:
    days: list[str]
    alerts_per_day: list[int]
    incidents_per_day: list[int]
    pages_per_day: list[int]
    alerts: int = 0
    incidents: int = 0
    pages: int = 0
    noise_reduction: float | None = None
    mtta: Mapping[str, float | None] = field(default_factory=dict)
    mttr: Mapping[str, float | None] = field(default_factory=dict)
    by_service: list[tuple[str, int]] = field(default_factory=list)
    by_severity: list[tuple[str, int]] = field(default_factory=list)
    by_source: list[tuple[str, int]] = field(default_factory=list)
    top_noisy: list[Mapping[str, Any]] = field(default_factory=list)
    flapping: list[Mapping[str, Any]] = field(default_factory=list)


def duration(seconds: float | None) -> str:
    """``4 min``, ``2.5 h``, ``—``: a time to acknowledge or resolve, in words."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def summarise(found: Mapping[str, Any], days: int, now: datetime) -> Summary:
    """``found``: the analytics of the last ``days`` days up to ``now``."""
    first = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    labels = [first + timedelta(days=i) for i in range(days)]
    per_day: dict[date, Mapping[str, Any]] = {
        date.fromisoformat(str(row["day"])[:10]): row for row in found.get("daily", [])
    }

    def series(key: str) -> list[int]:
        return [int(per_day.get(day, {}).get(key, 0)) for day in labels]

    def ranked(key: str) -> list[tuple[str, int]]:
        return sorted(found.get(key, {}).items(), key=lambda kv: (-kv[1], kv[0]))

    return Summary(
        days=[d.strftime("%b %d") for d in labels],
        alerts_per_day=series("alerts"),
        incidents_per_day=series("incidents"),
        pages_per_day=series("pages"),
        alerts=int(found.get("alerts", 0)),
        incidents=int(found.get("incidents", 0)),
        pages=int(found.get("pages", 0)),
        noise_reduction=found.get("noise_reduction"),
        mtta=found.get("mtta_seconds") or {},
        mttr=found.get("mttr_seconds") or {},
        by_service=ranked("by_service")[:20],
        by_severity=ranked("by_severity"),
        by_source=ranked("by_source"),
        top_noisy=list(found.get("top_noisy", []))[:10],
        flapping=list(found.get("flapping", []))[:10],
    )

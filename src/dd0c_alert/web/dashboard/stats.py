"""Analytics for the dashboard computed from a list of incidents: alerts and incidents
per day, and totals by service and severity. Pure: the page passes the incidents in,
so it can switch to ``GET /v1/analytics`` (rollups) without changing the templates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

WINDOWS = {"7d": 7, "30d": 30, "90d": 90}


@dataclass
class Summary:
    days: list[str]
    alerts_per_day: list[int]
    incidents_per_day: list[int]
    pages: int = 0
    by_service: list[tuple[str, int, int]] = field(default_factory=list)
    by_severity: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        return sum(self.alerts_per_day)

    @property
    def incidents(self) -> int:
        return sum(self.incidents_per_day)

    @property
    def noise_reduction(self) -> float:
        """The share of alerts that did not become an incident of their own."""
        return 0.0 if not self.alerts else 1 - self.incidents / self.alerts


def _moment(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def summarise(incidents: Iterable[Mapping[str, Any]], days: int, now: datetime) -> Summary:
    """Each incident counts on the (UTC) day it opened, with all its alerts."""
    first = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    labels = [(first + timedelta(days=i)) for i in range(days)]
    index = {day: i for i, day in enumerate(labels)}
    alerts, opened = [0] * days, [0] * days
    services: Counter[str] = Counter()
    service_alerts: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    severity_alerts: Counter[str] = Counter()
    pages = 0
    for item in incidents:
        i = index.get(_moment(item["opened_at"]).astimezone(UTC).date())
        if i is None:
            continue
        count = int(item.get("alert_count") or 0)
        alerts[i] += count
        opened[i] += 1
        pages += bool(item.get("paged"))
        for service in item.get("services") or []:
            services[service] += 1
            service_alerts[service] += count
        severities[str(item["severity"])] += 1
        severity_alerts[str(item["severity"])] += count
    return Summary(
        days=[d.strftime("%b %d") for d in labels],
        alerts_per_day=alerts,
        incidents_per_day=opened,
        pages=pages,
        by_service=[(s, n, service_alerts[s]) for s, n in services.most_common(20)],
        by_severity=[(s, n, severity_alerts[s]) for s, n in severities.most_common()],
    )

"""Severity spellings shared by the label-based providers (Alertmanager, Grafana, custom).

Unknown spellings map to medium: an alert is never dropped or silenced for having a
severity we did not expect.
"""

from __future__ import annotations

from .models import Severity

COMMON_SPELLINGS: dict[str, Severity] = {
    **dict.fromkeys(
        (
            "critical",
            "crit",
            "page",
            "fatal",
            "emergency",
            "emerg",
            "alert",
            "disaster",
            "p1",
            "sev1",
        ),
        Severity.CRITICAL,
    ),
    **dict.fromkeys(("error", "err", "high", "major", "p2", "sev2"), Severity.HIGH),
    **dict.fromkeys(
        ("warning", "warn", "medium", "moderate", "average", "p3", "sev3"), Severity.MEDIUM
    ),
    **dict.fromkeys(("low", "minor", "p4", "sev4"), Severity.LOW),
    **dict.fromkeys(
        ("info", "informational", "information", "notice", "debug", "none", "ok", "p5", "sev5"),
        Severity.INFO,
    ),
}


def parse_severity(value: object, table: dict[str, Severity] | None = None) -> Severity:
    """Map a provider's severity value to ours; anything unrecognised is medium."""
    if not isinstance(value, str | int):
        return Severity.MEDIUM
    key = str(value).strip().lower()
    return (table or COMMON_SPELLINGS).get(key, Severity.MEDIUM)


_RANK = {severity: rank for rank, severity in enumerate(Severity)}


def worst(a: Severity, b: Severity) -> Severity:
    """The more severe of two (critical is worst)."""
    return a if _RANK[a] <= _RANK[b] else b

"""One module per source. ``PROVIDERS`` maps the URL name to its module."""

from __future__ import annotations

from . import (
    alertmanager,
    argocd,
    custom,
    datadog,
    github,
    gitlab,
    grafana,
    opsgenie,
    pagerduty,
    pagerduty_events,
)
from .base import Provider

PROVIDERS: dict[str, Provider] = {
    module.NAME: module
    for module in (
        alertmanager,
        grafana,
        datadog,
        pagerduty,
        pagerduty_events,
        opsgenie,
        custom,
        github,
        gitlab,
        argocd,
    )
}

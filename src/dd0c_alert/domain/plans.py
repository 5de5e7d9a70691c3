"""Plans: the limits a tenant lives with, as presets in code (``tenants.plan`` names one).

``self-hosted`` (the default, also for a tenant with no plan set) is unlimited and
defers to the operator's settings (``DD0C_MONTHLY_QUOTA``, ``DD0C_RATE_LIMIT_PER_SECOND``,
``DD0C_RETENTION_DAYS``). ``free`` is the seed's free tier.

The monthly quota counts **alerts**: canonical alert events the worker normalised in
the month (a firing or a resolve; a repeat that folds into an existing alert counts
again, as it is one more notification), whatever number of webhook deliveries carried
them. The same count is the ``alerts`` of ``GET /v1/analytics``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    #: Alerts per calendar month (UTC); None: no limit of the plan's own.
    monthly_alerts: int | None
    #: Days records are kept; None: the operator's retention.
    retention_days: int | None
    #: Webhook deliveries per second; None: the operator's rate limit.
    rate_limit_per_second: float | None
    #: Users; None: unlimited.
    seats: int | None


FREE = Plan("free", monthly_alerts=10_000, retention_days=7, rate_limit_per_second=50, seats=3)
SELF_HOSTED = Plan(
    "self-hosted", monthly_alerts=None, retention_days=None, rate_limit_per_second=None, seats=None
)
PLANS = {plan.name: plan for plan in (FREE, SELF_HOSTED)}
DEFAULT = SELF_HOSTED
#: The share of the quota at which a tenant is warned.
WARNING_SHARE = 0.8
#: The longest analytics window (``GET /v1/analytics?window=90d``). Hourly counters
#: (alerts, incidents, pages per service, source and severity; webhook outcomes per
#: integration) hold no alert content and are kept this long even where the plan's
#: retention is shorter, so every plan's 90-day analytics have 90 days of counts.
#: Everything that carries alert content (alerts, incidents, the noisiest
#: fingerprints with their titles) and the audit and product event logs go at the
#: plan's retention.
COUNTERS_DAYS = 90


def plan_named(name: str | None) -> Plan:
    return PLANS.get(name or DEFAULT.name, DEFAULT)


def quota(plan: Plan, tenant_quota: int | None, operator_quota: int) -> int:
    """The tenant's monthly alert quota, 0 for none: the tenant's own override, else
    the plan's, else the operator's default."""
    if tenant_quota is not None:
        return tenant_quota
    if plan.monthly_alerts is not None:
        return plan.monthly_alerts
    return operator_quota


def warning_threshold(quota_alerts: int) -> int:
    """The count at which the 80 % warning fires (0 when there is no quota)."""
    return int(quota_alerts * WARNING_SHARE + 0.999999) if quota_alerts > 0 else 0

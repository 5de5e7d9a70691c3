"""What one tenant may ask of the REST API: body size and the size of its rules.

Each cap is named in the refusal (413 or 422) with the setting that raises it; the
defaults are far above what a real team declares and far below what hurts the
service (issue 13: a 700 x 700 topology cost every alert of its tenant 3 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dd0c_alert.pipeline.replay import Proposal


@dataclass(frozen=True, slots=True)
class ApiLimits:
    #: Request bodies of every REST endpoint (webhooks have their own cap).
    max_body_bytes: int = 1024 * 1024
    #: Distinct services named in a topology (as dependents or dependencies).
    max_topology_services: int = 2_000
    #: Dependency edges in a topology.
    max_topology_edges: int = 10_000
    #: Matchers in one silence, one route or one side of an inhibition rule.
    max_matchers_per_rule: int = 32
    max_silences: int = 1_000
    max_inhibitions: int = 200
    max_never_suppress_services: int = 500
    #: Notification routes per tenant: every intent is matched against all of them.
    max_routes: int = 100
    #: Time for a whole request body to arrive (uvicorn has no such timeout).
    body_timeout_seconds: float = 30.0


class LimitExceeded(ValueError):
    """A request over one of the caps; ``setting`` is the variable that raises it."""

    def __init__(self, what: str, limit: int, setting: str) -> None:
        super().__init__(f"{what}: the limit is {limit} (setting {setting})")
        self.limit = limit
        self.setting = setting


def check_topology(dependencies: dict[str, list[str]], limits: ApiLimits) -> None:
    """``LimitExceeded`` when the topology has too many services or edges."""
    edges = sum(len(set(ups)) for ups in dependencies.values())
    if edges > limits.max_topology_edges:
        raise LimitExceeded(
            f"topology has {edges} dependencies",
            limits.max_topology_edges,
            "DD0C_MAX_TOPOLOGY_EDGES",
        )
    services = set(dependencies)
    for ups in dependencies.values():
        services.update(ups)
    if len(services) > limits.max_topology_services:
        raise LimitExceeded(
            f"topology names {len(services)} services",
            limits.max_topology_services,
            "DD0C_MAX_TOPOLOGY_SERVICES",
        )


def check_never_suppress(services: Sequence[str], limits: ApiLimits) -> None:
    """``LimitExceeded`` when a never-suppress list is too long."""
    if len(services) > limits.max_never_suppress_services:
        raise LimitExceeded(
            f"{len(services)} never-suppress services",
            limits.max_never_suppress_services,
            "DD0C_MAX_NEVER_SUPPRESS_SERVICES",
        )


def check_proposal(proposal: Proposal, limits: ApiLimits) -> None:
    """The caps of stored rules apply to a replay proposal too: it runs the same engine."""
    check_never_suppress(proposal.settings.get("never_suppress_services", ()), limits)
    dependencies = proposal.dependencies
    silences, inhibitions = proposal.silences, proposal.inhibitions
    if dependencies is not None:
        check_topology({k: list(v) for k, v in dependencies.items()}, limits)
    if silences is not None and len(silences) > limits.max_silences:
        raise LimitExceeded("too many silences", limits.max_silences, "DD0C_MAX_SILENCES")
    if inhibitions is not None and len(inhibitions) > limits.max_inhibitions:
        raise LimitExceeded(
            "too many inhibition rules", limits.max_inhibitions, "DD0C_MAX_INHIBITIONS"
        )
    for rule in (*(silences or ()), *(inhibitions or ())):
        for matchers in (
            getattr(rule, "matchers", ()),
            getattr(rule, "source", ()),
            getattr(rule, "target", ()),
        ):
            if len(matchers) > limits.max_matchers_per_rule:
                raise LimitExceeded(
                    f"{len(matchers)} matchers in one rule",
                    limits.max_matchers_per_rule,
                    "DD0C_MAX_MATCHERS_PER_RULE",
                )

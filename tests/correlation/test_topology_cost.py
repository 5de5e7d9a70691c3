"""Topology walks are bounded whatever the declared graph (issue 13), and the bounded
root finder names the same root as the plain definition."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from test_engine import T0, Engine, alert

from dd0c_alert.correlation.model import Rules
from dd0c_alert.correlation.topology import WALK_BUDGET, TopologyIndex, topology_index


def _reference_root(deps: dict[str, frozenset[str]], services: set[str], first: str) -> str:
    """The definition, walked without bounds: the root no affected service is upstream
    of, that most affected services depend on."""

    def upstream(service: str) -> set[str]:
        seen: set[str] = set()
        stack = list(deps.get(service, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(deps.get(current, ()))
        return seen

    affected = sorted(services)
    if len(affected) <= 1:
        return first
    ups = {s: upstream(s) & set(affected) for s in affected}
    roots = [s for s in affected if not ups[s]]
    if not roots:
        return first
    dependents = {r: sum(r in ups[s] for s in affected) for r in roots}
    best = max(dependents.values())
    candidates = [r for r in roots if dependents[r] == best]
    return first if first in candidates else candidates[0]


_names = st.sampled_from([f"s{i}" for i in range(8)])


@given(
    st.dictionaries(_names, st.frozensets(_names, max_size=4), max_size=8),
    st.sets(_names, min_size=1, max_size=8),
)
def test_the_bounded_root_is_the_defined_root(
    deps: dict[str, frozenset[str]], services: set[str]
) -> None:
    deps = {s: frozenset(u for u in ups if u != s) for s, ups in deps.items()}
    first = min(services)
    assert TopologyIndex(deps).probable_root(services, first) == _reference_root(
        deps, services, first
    )


def _graph_at_the_cap(services: int = 2_000, edges_each: int = 5) -> dict[str, frozenset[str]]:
    """2,000 services, 10,000 dependencies, random, full of cycles: the worst legal graph."""
    rng = random.Random(13)
    names = [f"svc-{i}" for i in range(services)]
    return {
        name: frozenset(rng.sample([n for n in names if n != name], edges_each)) for name in names
    }


def test_per_alert_topology_work_is_bounded_on_a_graph_at_the_cap() -> None:
    deps = _graph_at_the_cap()
    assert sum(len(v) for v in deps.values()) == 10_000
    engine = Engine(rules=Rules(dependencies=deps))
    index = topology_index(deps)
    alerts = [alert(m * 0.01, f"svc-{m * 7 % 2_000}") for m in range(300)]
    for start in range(0, len(alerts), 50):
        engine.send(*alerts[start : start + 50])
    per_alert = index.visits / len(alerts)
    # root (two budgets) + deploy suspects (one): never more, whatever the graph
    assert per_alert <= 3 * WALK_BUDGET, per_alert
    assert sum(i.alert_count for i in engine.incidents()) == 300


def test_a_cycle_is_handled_explicitly() -> None:
    ring = {f"r{i}": frozenset({f"r{(i + 1) % 50}"}) for i in range(50)}
    engine = Engine(rules=Rules(dependencies=ring))
    engine.send(alert(0, "r7"), alert(1, "r8"), alert(2, "r9"))
    [incident] = engine.incidents()
    assert incident.probable_root == "r7"  # nothing is upstream in a cycle: first alerting
    assert T0 + timedelta(minutes=2) == incident.last_at

"""Service dependencies: which services' alerts belong together, and which is the root.

``dependencies`` maps a service to the services it depends on (``checkout`` →
``payments-db``). Two services are connected when one depends directly on the other;
cascades chain through an incident because each joining service brings its own
neighbours with it.

Cost. The engine asks these questions for every alert, so they must not grow with
the declared graph without bound (issue 13: a 700 x 700 topology cost 3 s per alert).
``TopologyIndex`` is built once per declared topology (O(edges), cached per
dependencies object, i.e. per configuration the worker loaded): direct neighbours are
then a lookup, and every transitive walk is a breadth-first search over the index that
stops after ``WALK_BUDGET`` edge visits. A walk that runs out of budget gives a
deterministic, simpler answer (named in ``TopologyIndex.exhausted``), never a slow one.

Cycles are accepted and handled: real systems call each other both ways, and
accepted ``link`` suggestions may close a loop. Walks keep a visited set, so a cycle
costs nothing extra; services on a cycle all depend on each other, so none of them is
clearly upstream and the probable root falls back to the service that alerted first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

#: Edge visits one transitive walk may make. A legal topology at the default caps
#: (2,000 services, 10,000 edges) is walked whole within it.
WALK_BUDGET = 25_000


def neighbours(dependencies: Mapping[str, frozenset[str]], service: str) -> set[str]:
    """Services that ``service`` depends on or that depend on it."""
    return set(topology_index(dependencies).neighbours(service))


def upstream_of(dependencies: Mapping[str, frozenset[str]], service: str) -> set[str]:
    """Everything ``service`` depends on, transitively (within the walk budget)."""
    found = topology_index(dependencies).reach({service}, upward=True)
    return set(found) if found is not None else set(dependencies.get(service, ()))


class WalkBudgetExceeded(Exception):
    pass


class TopologyIndex:
    """One declared topology, indexed both ways; counts the edges its walks visit."""

    def __init__(self, dependencies: Mapping[str, AbstractSet[str]]) -> None:
        self.dependencies = dependencies
        self._up: dict[str, tuple[str, ...]] = {
            service: tuple(sorted(ups)) for service, ups in dependencies.items() if ups
        }
        down: dict[str, list[str]] = {}
        for service, ups in self._up.items():
            for upstream in ups:
                down.setdefault(upstream, []).append(service)
        self._down = {service: tuple(sorted(deps)) for service, deps in down.items()}
        #: Edge visits of every walk so far, and walks that ran out of budget: for tests
        #: and benches (the engine's cost per alert is bounded by walks x budget).
        self.visits = 0
        self.exhausted = 0

    def neighbours(self, service: str) -> frozenset[str]:
        return frozenset(self._up.get(service, ())) | frozenset(self._down.get(service, ()))

    def reach(
        self, sources: Iterable[str], *, upward: bool, budget: int = WALK_BUDGET
    ) -> frozenset[str] | None:
        """Services reachable in one step or more from any of ``sources``: what they
        depend on (``upward``) or what depends on them; None when the walk would
        visit more than ``budget`` edges."""
        edges = self._up if upward else self._down
        seen: set[str] = set()
        queue = deque(sorted(set(sources)))
        spent = 0
        try:
            while queue:
                for nxt in edges.get(queue.popleft(), ()):
                    spent += 1
                    if spent > budget:
                        raise WalkBudgetExceeded
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append(nxt)
        except WalkBudgetExceeded:
            self.exhausted += 1
            return None
        finally:
            self.visits += spent
        return frozenset(seen)

    def probable_root(self, services: Iterable[str], first_service: str) -> str:
        """The most upstream affected service: one that no other affected service is
        upstream of, and that the most affected services depend on (ties: the first
        alerting service, else the first by name). Bounded walks: one multi-source
        walk finds the affected services something affected is upstream of, and walks
        from the remaining candidates (sharing one budget) count their affected
        dependents: at most two budgets in all. Out of budget, the first alerting
        service (or the first candidate) is named."""
        affected = set(services)
        if len(affected) <= 1:
            return first_service
        below = self.reach(affected, upward=False)
        if below is None:
            return first_service
        roots = sorted(affected - below)
        if not roots:  # a cycle: nothing is clearly upstream
            return first_service
        if len(roots) == 1:
            return roots[0]
        dependents: dict[str, int] = {}
        budget = WALK_BUDGET  # shared by the candidates' walks: one budget in all
        for root in roots:
            before = self.visits
            reached = self.reach({root}, upward=False, budget=budget)
            budget -= self.visits - before
            if reached is None:
                return first_service if first_service in roots else roots[0]
            dependents[root] = len(reached & affected)
        best = max(dependents.values())
        candidates = [r for r in roots if dependents[r] == best]
        return first_service if first_service in candidates else candidates[0]


_INDEXES: OrderedDict[int, TopologyIndex] = OrderedDict()
_INDEXES_LOCK = threading.Lock()
_INDEXES_MAX = 256


def topology_index(dependencies: Mapping[str, AbstractSet[str]]) -> TopologyIndex:
    """The index of this dependencies object, built once while it is in use: the
    worker keeps one per tenant configuration it loaded. Keyed by identity; the index
    holds the object, so its id cannot be reused while cached. Bounded (LRU)."""
    key = id(dependencies)
    with _INDEXES_LOCK:
        found = _INDEXES.get(key)
        if found is not None and found.dependencies is dependencies:
            _INDEXES.move_to_end(key)
            return found
    index = TopologyIndex(dependencies)
    with _INDEXES_LOCK:
        _INDEXES[key] = index
        _INDEXES.move_to_end(key)
        while len(_INDEXES) > _INDEXES_MAX:
            _INDEXES.popitem(last=False)
    return index

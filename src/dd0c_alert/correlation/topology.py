"""Service dependencies: which services' alerts belong together, and which is the root.

``dependencies`` maps a service to the services it depends on (``checkout`` →
``payments-db``). Two services are connected when one depends directly on the other;
cascades chain through an incident because each joining service brings its own
neighbours with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet


def neighbours(dependencies: Mapping[str, frozenset[str]], service: str) -> set[str]:
    """Services that ``service`` depends on or that depend on it."""
    found = set(dependencies.get(service, ()))
    found.update(s for s, deps in dependencies.items() if service in deps)
    return found


def upstream_of(dependencies: Mapping[str, frozenset[str]], service: str) -> set[str]:
    """Everything ``service`` depends on, transitively."""
    seen: set[str] = set()
    stack = list(dependencies.get(service, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(dependencies.get(current, ()))
    return seen


def probable_root(
    upstream_of: Callable[[str], AbstractSet[str]] | None,
    services: Iterable[str],
    first_service: str,
) -> str:
    """The most upstream affected service: one that no other affected service is
    upstream of, and that the most affected services depend on. Without topology
    (``upstream_of`` None: what a service depends on, transitively), the service that
    alerted first."""
    affected = sorted(set(services))
    if len(affected) <= 1 or upstream_of is None:
        return first_service
    upstream = {s: upstream_of(s) & set(affected) for s in affected}
    roots = [s for s in affected if not upstream[s]]
    if not roots:  # a cycle: nothing is clearly upstream
        return first_service
    dependents = {root: sum(root in upstream[s] for s in affected) for root in roots}
    best = max(dependents.values())
    candidates = [r for r in roots if dependents[r] == best]
    return first_service if first_service in candidates else candidates[0]

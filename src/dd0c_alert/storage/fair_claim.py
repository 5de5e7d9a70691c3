"""Round-robin across tenants when a consumer claims queued events.

A plain FIFO claim hands a consumer the oldest events whoever sent them, so a
tenant's 20,000-alert storm queued ahead of another tenant's one critical alert
delays it by the whole storm. Claiming in turns instead (one event of each tenant
with work, then a second of each, ...) puts every tenant with work into the next
batch, so one tenant's backlog delays another by about one batch, whatever its size.
Within a tenant, events keep their queue order.

A claim is bounded by bytes as well as by count: the worker holds every claimed
event's body until its batch ends, and by count alone 500 events could hold 500 MiB
(claim-checked bodies of up to 1 MiB each). Bounded by bytes, a batch of small
notifications can be large (its transaction's fixed costs shared by more alerts)
and one of large bodies stays small.

Both queues find the tenants with work by an index skip-scan (one index probe per
tenant, not a scan of the backlog) and then read each tenant's oldest events from
the same index, so the cost of a claim grows with the number of tenants, not with
the length of the queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

#: ``fetch(pairs, share)``: for each ``(tenant, after)`` pair, up to ``share`` ids of
#: that tenant's visible events with an id above ``after``, oldest first.
Fetch = Callable[[Sequence[tuple[str, int]], int], dict[str, list[int]]]

#: ``sizes(ids)``: how many bytes of body each of these events holds in memory once read.
Sizes = Callable[[Sequence[int]], Mapping[int, int]]

#: Rounds of fetching: a tenant with fewer events than its share leaves the rest of
#: the batch to the others, which get a further share in the next round.
ROUNDS = 3


class TenantTurns:
    """Which tenants come first in the next claim: those after the last one served,
    so that with more tenants than a batch holds, every tenant still gets its turn."""

    def __init__(self) -> None:
        self._last: str | None = None

    def order(self, tenants: Sequence[str], limit: int) -> list[str]:
        ordered = sorted(tenants)
        if self._last is not None:
            later = [t for t in ordered if t > self._last]
            ordered = later + [t for t in ordered if t <= self._last]
        return ordered[:limit]

    def served(self, tenant_id: str) -> None:
        self._last = tenant_id


def fair_ids(
    tenants: Sequence[str],
    limit: int,
    fetch: Fetch,
    turns: TenantTurns,
    sizes: Sizes | None = None,
    max_bytes: int = 0,
) -> list[int]:
    """Up to ``limit`` event ids, taken in turns across ``tenants``; with ``sizes``,
    only as many of them, in that order, as hold at most ``max_bytes`` of bodies (the
    first always: it has to be processed some time)."""
    chosen = turns.order(tenants, limit)
    taken: dict[str, list[int]] = {t: [] for t in chosen}
    open_tenants, total = chosen, 0
    for _ in range(ROUNDS):
        if not open_tenants or total >= limit:
            break
        share = max(1, math.ceil((limit - total) / len(open_tenants)))
        got = fetch([(t, taken[t][-1] if taken[t] else 0) for t in open_tenants], share)
        still_open = []
        for tenant in open_tenants:
            ids = got.get(tenant, [])
            taken[tenant].extend(ids)
            total += len(ids)
            if len(ids) == share:
                still_open.append(tenant)
        open_tenants = still_open
    order: list[tuple[str, int]] = []
    longest = max((len(ids) for ids in taken.values()), default=0)
    for turn in range(longest):
        for tenant in chosen:
            ids = taken[tenant]
            if turn < len(ids) and len(order) < limit:
                order.append((tenant, ids[turn]))
    if sizes is not None and order:
        size_of = sizes([event_id for _, event_id in order])
        total = 0
        for kept, (_, event_id) in enumerate(order):
            total += size_of.get(event_id, 0)
            if total > max_bytes and kept:
                del order[kept:]
                break
    for tenant, _ in order:
        turns.served(tenant)
    return [event_id for _, event_id in order]

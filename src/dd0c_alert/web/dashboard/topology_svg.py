"""The tenant's declared service dependencies drawn as layered SVG: dependents on the
left, what they depend on to their right, so a failure's likely root sits right of
the services it takes down. Pure: names in, markup out.

Only a legible number of services is drawn (``MAX_DRAWN``); a larger topology is
drawn around one service (its dependencies and dependents), chosen on the page.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from html import escape

MAX_DRAWN = 60
_COL, _ROW, _NODE_W, _NODE_H, _PAD = 200, 48, 150, 30, 12


def neighbourhood(depends_on: Mapping[str, Collection[str]], service: str) -> set[str]:
    """``service``, what it depends on, and what depends on it."""
    found = {service, *depends_on.get(service, ())}
    found |= {s for s, ups in depends_on.items() if service in ups}
    return found


def _levels(nodes: list[str], edges: Mapping[str, list[str]]) -> dict[str, int]:
    """0 for a service that depends on nothing drawn, else one more than its deepest
    dependency; an edge closing a cycle is ignored for the layout (still drawn)."""
    level: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(node: str) -> int:
        if node in level:
            return level[node]
        if node in visiting:
            return 0
        visiting.add(node)
        deepest = max((visit(up) + 1 for up in edges.get(node, ())), default=0)
        visiting.discard(node)
        level[node] = deepest
        return deepest

    for node in nodes:
        visit(node)
    return level


def topology_graph(
    depends_on: Mapping[str, Collection[str]], services: Collection[str], highlight: str = ""
) -> str:
    """The dependencies among ``services`` (at most ``MAX_DRAWN``: ``ValueError``
    beyond), ``highlight`` marked; an accessible ``role="img"`` with a text summary."""
    nodes = sorted(services)
    if len(nodes) > MAX_DRAWN:
        raise ValueError(f"{len(nodes)} services: at most {MAX_DRAWN} are drawn")
    if not nodes:
        return ""
    drawn = set(nodes)
    edges = {s: sorted(u for u in depends_on.get(s, ()) if u in drawn and u != s) for s in nodes}
    level = _levels(nodes, edges)
    deepest = max(level.values())
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(deepest - level[node], []).append(node)
    at: dict[str, tuple[float, float]] = {}
    for column, names in columns.items():
        for row, node in enumerate(names):
            at[node] = (_PAD + column * _COL, _PAD + row * _ROW)
    width = _PAD * 2 + deepest * _COL + _NODE_W
    height = _PAD * 2 + (max(len(n) for n in columns.values()) - 1) * _ROW + _NODE_H
    count = sum(len(u) for u in edges.values())
    label = f"Service dependencies: {len(nodes)} services, {count} dependencies"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        '<defs><marker id="topo-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'class="arrowhead"/></marker></defs>',
    ]
    half = _NODE_H / 2
    for service in nodes:
        for needed in edges[service]:
            (x1, y1), (x2, y2) = at[service], at[needed]
            backwards = x2 <= x1  # a cycle: leave from the left, enter from the right
            start = x1 if backwards else x1 + _NODE_W
            end = x2 + _NODE_W if backwards else x2
            parts.append(
                f'<line class="edge" x1="{start:.0f}" y1="{y1 + half:.0f}" x2="{end:.0f}" '
                f'y2="{y2 + half:.0f}" marker-end="url(#topo-arrow)"><title>'
                f"{escape(service)} depends on {escape(needed)}</title></line>"
            )
    for node in nodes:
        x, y = at[node]
        kind = "node focus" if node == highlight else "node"
        short = node if len(node) <= 20 else node[:19] + "…"
        parts.append(
            f'<g class="{kind}"><rect x="{x:.0f}" y="{y:.0f}" width="{_NODE_W}" '
            f'height="{_NODE_H}" rx="6"/><text x="{x + _NODE_W / 2:.0f}" y="{y + half + 4:.0f}" '
            f'text-anchor="middle">{escape(short)}</text><title>{escape(node)}</title></g>'
        )
    parts.append("</svg>")
    return "".join(parts)

"""SVG charts drawn on the server: pure functions from numbers to markup, no I/O and
no browser needed to test them. Colours come from CSS classes (``static/app.css``),
so dark mode and print follow the page."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    css_class: str


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power: int = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    width: int = 960,
    height: int = 240,
) -> str:
    """Grouped vertical bars, one group per label, one bar per series; an accessible
    ``role="img"`` with a title, a description of the totals and a tooltip per bar."""
    for item in series:
        if len(item.values) != len(labels):
            raise ValueError(
                f"series {item.name!r}: {len(item.values)} values, {len(labels)} labels"
            )
    left, right, top, bottom = 40, 8, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((v for s in series for v in s.values), default=0))
    group_w = plot_w / max(len(labels), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1.0)
    totals = ", ".join(f"{s.name}: {sum(s.values)}" for s in series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}. {escape(totals)}">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(totals)}</desc>",
    ]
    fractions = (0.0, 0.5, 1.0) if top_value % 2 == 0 else (0.0, 1.0)
    for fraction in fractions:  # gridlines at whole numbers only
        y = top + plot_h * (1 - fraction)
        value = top_value * fraction
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
    label_every = max(1, math.ceil(len(labels) / 10))
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, item in enumerate(series):
            value = item.values[i]
            h = plot_h * value / top_value
            x, y = x0 + j * bar_w, top + plot_h - h
            parts.append(
                f'<rect class="bar {escape(item.css_class)}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                f"{value} {escape(item.name)}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text class="axis" x="{left + (i + 0.5) * group_w:.1f}" y="{height - 8}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def service_graph(
    services: Sequence[str],
    depends_on: Mapping[str, Collection[str]],
    root: str,
    size: int = 260,
) -> str:
    """The incident's services on a circle (the probable root in the middle when there
    are several), arrows for the declared dependencies among them (service → what it
    needs), the probable root highlighted."""
    names = list(dict.fromkeys(services))
    if root and root not in names:
        names.insert(0, root)
    if not names:
        return ""
    if len(names) == 1:
        size = 120
    centre = size / 2
    radius = size / 2 - 48
    others = [n for n in names if n != root] if root else names
    at: dict[str, tuple[float, float]] = {}
    if root:
        at[root] = (centre, centre)
    for i, name in enumerate(others):
        angle = -math.pi / 2 + 2 * math.pi * i / max(len(others), 1)
        at[name] = (centre + radius * math.cos(angle), centre + radius * math.sin(angle))
    label = f"Services of the incident: {', '.join(names)}"
    if root:
        label += f"; probable root: {root}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {size} {size}" '
        f'width="{size}" height="{size}" '
        f'role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'class="arrowhead"/></marker></defs>',
    ]
    node_r = 22.0
    for service in names:
        for needed in depends_on.get(service, ()):
            if needed not in at or needed == service:
                continue
            (x1, y1), (x2, y2) = at[service], at[needed]
            d = math.hypot(x2 - x1, y2 - y1) or 1.0
            ux, uy = (x2 - x1) / d, (y2 - y1) / d
            parts.append(
                f'<line class="edge" x1="{x1 + ux * node_r:.1f}" y1="{y1 + uy * node_r:.1f}" '
                f'x2="{x2 - ux * node_r:.1f}" y2="{y2 - uy * node_r:.1f}" '
                f'marker-end="url(#arrow)"><title>{escape(service)} depends on '
                f"{escape(needed)}</title></line>"
            )
    for name in names:
        x, y = at[name]
        kind = "node root" if name == root else "node"
        short = name if len(name) <= 14 else name[:13] + "…"
        parts.append(
            f'<g class="{kind}"><circle cx="{x:.1f}" cy="{y:.1f}" r="{node_r}"/>'
            f'<text x="{x:.1f}" y="{y + node_r + 14:.1f}" text-anchor="middle">'
            f"{escape(short)}</text><title>{escape(name)}"
            f"{' (probable root)' if name == root else ''}</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)

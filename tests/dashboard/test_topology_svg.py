"""The topology graph: layers from dependents to dependencies, cycles drawn without
looping the layout, and a cap on what is drawn."""

from __future__ import annotations

import re

import pytest

from dd0c_alert.web.dashboard.topology_svg import MAX_DRAWN, neighbourhood, topology_graph


def _x(svg: str, name: str) -> float:
    found = re.search(rf'<rect x="(\d+)" y="\d+"[^>]*/><text[^>]*>{name}</text>', svg)
    assert found, name
    return float(found.group(1))


def test_dependents_are_left_of_what_they_depend_on() -> None:
    deps = {"web": ["checkout"], "checkout": ["payments", "db"], "payments": ["db"]}
    svg = topology_graph(deps, {"web", "checkout", "payments", "db"}, "payments")
    assert _x(svg, "web") < _x(svg, "checkout") < _x(svg, "payments") < _x(svg, "db")
    assert svg.count('class="edge"') == 4 and svg.count('class="node focus"') == 1
    assert 'aria-label="Service dependencies: 4 services, 4 dependencies"' in svg


def test_a_cycle_is_drawn_and_the_layout_ends() -> None:
    svg = topology_graph({"a": ["b"], "b": ["a"]}, {"a", "b"})
    assert svg.count('class="edge"') == 2


def test_names_are_escaped_and_too_many_services_are_refused() -> None:
    assert "&lt;script&gt;" in topology_graph({"<script>": ["db"]}, {"<script>", "db"})
    many = {f"s{n}": ["db"] for n in range(MAX_DRAWN)}
    with pytest.raises(ValueError, match="at most"):
        topology_graph(many, {*many, "db"})
    assert neighbourhood(many, "s1") == {"s1", "db"}
    assert len(neighbourhood(many, "db")) == MAX_DRAWN + 1

"""The dashboard's SVG helper and analytics summary: pure functions, no browser."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from dd0c_alert.web.dashboard.stats import summarise
from dd0c_alert.web.dashboard.svg import Series, bar_chart, service_graph

NS = {"s": "http://www.w3.org/2000/svg"}


def test_bar_chart_draws_one_bar_per_value_scaled_to_a_round_maximum() -> None:
    svg = bar_chart(
        ["Mon", "Tue", "Wed"],
        [Series("alerts", [10, 40, 0], "alerts"), Series("incidents", [1, 2, 0], "incidents")],
        "Alerts & incidents",
        width=400,
        height=150,
    )
    root = ET.fromstring(svg)  # well-formed XML
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Alerts & incidents. alerts: 50, incidents: 3"
    bars = root.findall("s:rect", NS)
    assert len(bars) == 6
    heights = [float(b.get("height", "")) for b in bars]
    plot = 150 - 10 - 28
    assert heights[2] == pytest.approx(plot * 40 / 50)  # 40 of a nice maximum of 50
    assert heights[4] == 0.0
    assert [b.findtext("s:title", namespaces=NS) for b in bars[:2]] == [
        "Mon: 10 alerts",
        "Mon: 1 incidents",
    ]
    assert {b.get("class") for b in bars} == {"bar alerts", "bar incidents"}


def test_bar_chart_escapes_labels_and_handles_no_data() -> None:
    svg = bar_chart(["<b>"], [Series("a&b", [0], "x")], "t<")
    root = ET.fromstring(svg)
    assert "<b>" not in svg and root.findtext("s:title", namespaces=NS) == "t<"
    with pytest.raises(ValueError, match="labels"):
        bar_chart(["a", "b"], [Series("x", [1], "x")], "t")


def test_service_graph_highlights_the_root_and_draws_declared_edges_only() -> None:
    svg = service_graph(
        ["api", "db", "web"],
        {"api": ["db"], "web": ["api", "cdn"], "db": []},
        root="db",
    )
    root = ET.fromstring(svg)
    nodes = root.findall("s:g", NS)
    assert [n.findtext("s:title", namespaces=NS) for n in nodes] == [
        "api",
        "db (probable root)",
        "web",
    ]
    assert [n.get("class") for n in nodes] == ["node", "node root", "node"]
    edges = [e.findtext("s:title", namespaces=NS) for e in root.findall("s:line", NS)]
    assert edges == ["api depends on db", "web depends on api"]  # cdn is not in it
    assert "probable root: db" in (root.get("aria-label") or "")


def test_service_graph_of_one_service_and_of_none() -> None:
    one = ET.fromstring(service_graph(["db"], {}, "db"))
    assert len(one.findall("s:g", NS)) == 1 and not one.findall("s:line", NS)
    assert service_graph([], {}, "") == ""
    assert "&lt;x&gt;" in service_graph(["<x>"], {}, "")


def test_summary_counts_incidents_and_alerts_per_opening_day() -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    items = [
        {"opened_at": now, "alert_count": 5, "services": ["db"], "severity": "high", "paged": True},
        {
            "opened_at": now - timedelta(days=1),
            "alert_count": 3,
            "services": ["db", "api"],
            "severity": "low",
            "paged": False,
        },
        {
            "opened_at": (now - timedelta(days=30)).isoformat(),
            "alert_count": 9,
            "services": ["old"],
            "severity": "low",
        },
    ]
    summary = summarise(items, 7, now)
    assert summary.days[-1] == "Mar 10" and len(summary.days) == 7
    assert summary.alerts_per_day[-2:] == [3, 5]
    assert summary.incidents_per_day[-2:] == [1, 1]
    assert (summary.alerts, summary.incidents, summary.pages) == (8, 2, 1)
    assert summary.noise_reduction == pytest.approx(0.75)
    assert summary.by_service == [("db", 2, 8), ("api", 1, 3)]
    assert summary.by_severity == [("high", 1, 5), ("low", 1, 3)]

"""The dashboard's SVG helper and analytics summary: pure functions, no browser."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from dd0c_alert.web.dashboard.stats import duration, summarise
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


def test_summary_has_every_day_of_the_window_and_ranks_volumes() -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    found = {
        "alerts": 8,
        "incidents": 2,
        "pages": 1,
        "noise_reduction": 0.75,
        "mtta_seconds": {"median": 90.0, "p90": 600.0},
        "mttr_seconds": {"median": None, "p90": None},
        "by_service": {"api": 3, "db": 5},
        "by_severity": {"low": 3, "high": 5},
        "by_source": {"custom": 8},
        "daily": [
            {"day": "2026-03-09", "alerts": 3, "incidents": 1, "pages": 0},
            {"day": "2026-03-10", "alerts": 5, "incidents": 1, "pages": 1},
            {"day": "2026-02-01", "alerts": 9, "incidents": 9, "pages": 9},  # outside
        ],
        "top_noisy": [{"fingerprint": "f", "title": "disk", "count": 5}],
    }
    summary = summarise(found, 7, now)
    assert summary.days[0] == "Mar 04" and summary.days[-1] == "Mar 10"
    assert summary.alerts_per_day == [0, 0, 0, 0, 0, 3, 5]
    assert summary.incidents_per_day[-2:] == [1, 1]
    assert summary.pages_per_day[-2:] == [0, 1]
    assert summary.by_service == [("db", 5), ("api", 3)]
    assert summary.by_severity == [("high", 5), ("low", 3)]
    assert summary.top_noisy[0]["title"] == "disk"
    assert summarise({}, 30, now).alerts_per_day == [0] * 30


def test_durations_read_in_words() -> None:
    assert [duration(s) for s in (None, 42, 600, 9000, 259200)] == [
        "—",
        "42 s",
        "10 min",
        "2.5 h",
        "3.0 d",
    ]

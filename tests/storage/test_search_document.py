"""The incident search document's terms: bounded, first seen kept."""

from __future__ import annotations

from dd0c_alert.storage.incident_search import MAX_CHARS, NEARLY_FULL, add_terms


def _size(terms: list[str]) -> int:
    return sum(len(x) + 1 for x in terms)


def test_terms_are_added_once_in_order_first_seen() -> None:
    terms = ["a"]
    add_terms(terms, ["b", "a", "", "c", "b"])
    assert terms == ["a", "b", "c"]


def test_a_storm_fills_the_document_to_near_its_cap_and_no_further() -> None:
    terms: list[str] = []
    add_terms(terms, (f"instance-{i:05d}" for i in range(5_000)))
    assert MAX_CHARS - NEARLY_FULL < _size(terms) <= MAX_CHARS
    first = list(terms)
    add_terms(terms, ["x", "short", *(f"pod-{i}" for i in range(1_000))])
    assert terms == first  # nearly full: later alerts' terms are not tried


def test_a_long_term_that_does_not_fit_leaves_room_for_shorter_ones() -> None:
    terms = ["t" * (MAX_CHARS - 200)]
    add_terms(terms, ["L" * 500, "short"])
    assert terms[-1] == "short"

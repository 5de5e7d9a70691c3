"""The tolerant readers every provider module uses."""

from __future__ import annotations

from dd0c_alert.providers import parse


def test_text_drops_nul_and_replaces_lone_surrogates() -> None:
    # PostgreSQL cannot store NUL in text or JSONB; an alert must not fail there
    # while the same alert is stored on SQLite.
    assert parse.text("disk\x00 full") == "disk full"
    assert parse.text("bad \ud800 char") == "bad ? char"


def test_labels_are_cleaned_like_text() -> None:
    assert parse.labels({"team\x00": "db\x00a"}) == {"team": "dba"}

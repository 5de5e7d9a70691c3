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


def test_times_are_cached_only_when_short() -> None:
    """A sender controls these texts: long ones must not fill the cache's memory."""
    parse.timestamp("2026-12-05T06:00:00Z")
    before = parse._text_time.cache_info().currsize
    nanos = "2026-12-05T06:00:00." + "1" * 60 + "Z"  # a valid time, over 64 characters
    assert parse.timestamp(nanos) == parse.timestamp("2026-12-05T06:00:00.111111Z")
    assert parse._text_time.cache_info().currsize == before + 1  # the short one only
    assert parse.timestamp("2026-12-05T06:00:00Z") is parse.timestamp("2026-12-05T06:00:00Z")

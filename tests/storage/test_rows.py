"""The shared row helpers: the month a usage counter is kept under."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from dd0c_alert.storage.rows import month_of


@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_month_of_is_the_utc_month_of_the_instant(milliseconds: int) -> None:
    # Whole milliseconds: ``datetime.fromtimestamp`` rounds to the microsecond, so
    # within half a microsecond before midnight it names the next day.
    epoch = milliseconds / 1000
    assert month_of(epoch) == datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


def test_month_of_changes_at_the_utc_month_boundary() -> None:
    boundary = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert month_of(boundary - 0.001) == "2026-12"
    assert month_of(boundary) == "2027-01"

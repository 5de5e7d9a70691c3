"""The one rule for times a user gives us (query parameters, rule bodies, replay
ranges, CLI options): a time without an offset is UTC, and a time outside
``EARLIEST <= t < LATEST`` is refused, by name.

The range keeps every later computation safe: the engine and the stores add and
subtract windows of at most a few weeks (``correlation.engine.shift`` clamps, but
``datetime - datetime``, ``.timestamp()`` and the stores' conversions do not), so a
year of headroom below ``datetime.max`` is more than enough, and nothing this
service stores predates the Unix epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
#: Exclusive. ``datetime.max`` is 9999-12-31; a year below it leaves room for arithmetic.
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class InvalidTime(ValueError):
    """A user-given time that cannot be used; ``name`` is the parameter it came in."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


def as_utc(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC (offset-less: read as UTC), or ``InvalidTime`` when it lies
    outside the supported range."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        converted = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        converted = None
    if converted is None or not EARLIEST <= converted < LATEST:
        raise InvalidTime(
            name,
            f"{moment.isoformat()} is outside the supported range "
            f"{EARLIEST.isoformat()} .. {LATEST.isoformat()} (exclusive)",
        )
    return converted


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) checked by ``as_utc``."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidTime(name, f"expected an ISO 8601 time, got {text!r}") from None
    return as_utc(moment, name)


#: Hosts' clocks drift: an event time up to this far after the event's receipt is
#: believed; a later one (a sender's bad clock, a placeholder such as year 9999) is not.
CLOCK_SKEW = timedelta(minutes=5)


def believable(moment: datetime, received_at: datetime) -> datetime:
    """``moment``, or ``received_at`` when ``moment`` lies further in the future than
    clock skew explains: an alert that "starts" in 9999 would otherwise sort as the
    newest for ever and open its incident in that year."""
    return moment if moment <= received_at + CLOCK_SKEW else received_at


def window_start(now: datetime, days: int) -> datetime:
    """The first moment of an analytics window of ``days`` days ending at ``now``:
    midnight UTC of the day ``days - 1`` before today, so the window is today and the
    ``days - 1`` whole UTC days before it.

    Analytics count per UTC day (the daily chart, the top noisy fingerprints' daily
    rollups): a window that began mid-day would count part of a day in its totals and
    the whole of it in its noisiest alerts, and the API and the dashboard (which draws
    one bar per day) would disagree. Both take their window from here."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1)

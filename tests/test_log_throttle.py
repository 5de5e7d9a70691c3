"""A failure that lasts is logged once a minute with the count of lines held back,
not at every retry (a full disk would otherwise fill with its own error lines)."""

from __future__ import annotations

from dd0c_alert.logs import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_key_a_period_with_the_count_held_back() -> None:
    clock = Clock()
    throttle = Throttle(60.0, clock)
    assert throttle.allow("OperationalError") == 0  # the first line goes out
    for _ in range(119):  # two tries a second for a minute
        clock.now += 0.5
        assert throttle.allow("OperationalError") is None
    assert throttle.allow("DiskFull") == 0  # another kind is its own line
    clock.now += 0.6
    assert throttle.allow("OperationalError") == 119  # the next, with what it held
    assert throttle.allow("OperationalError") is None
    clock.now += 60
    assert throttle.allow("OperationalError") == 1

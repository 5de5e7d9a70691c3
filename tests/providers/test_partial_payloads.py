"""One malformed item of a list-shaped payload does not take the others down.

Every provider whose body holds a list of alerts (Alertmanager and Grafana groups,
Datadog, custom and PagerDuty Events v2 batches) reads each item on its own: the
readable ones come back inside PartialPayload, which names each skipped item by index
and reason; a delivery carrying ``x-dd0c-unread-items`` (the replay of such an event)
reads only the items it lists. OpsGenie, PagerDuty webhooks v3, GitHub, GitLab and
Argo CD carry one record per delivery and have nothing to split.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from dd0c_alert.domain.models import Normalised
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.providers.base import (
    UNREAD_ITEMS_HEADER,
    Delivery,
    PartialPayload,
    PayloadError,
    format_indexes,
    parse_indexes,
)
from dd0c_alert.providers.redact import redact

RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ROUTING_KEY = "R" * 32


def _am_alert(n: int) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": f"A{n}", "service": "api"}}


def _alertmanager(items: list[Any]) -> Any:
    return {"version": "4", "status": "firing", "alerts": items}


def _datadog_item(n: int) -> dict[str, Any]:
    return {"id": f"{n}", "title": f"[Triggered] CPU {n}", "alert_transition": "Triggered"}


def _custom_item(n: int) -> dict[str, Any]:
    return {"title": f"Disk {n}", "service": "db"}


def _pd_event(n: int) -> dict[str, Any]:
    return {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": f"down {n}", "source": "h", "severity": "error"},
    }


#: provider -> (a good item, bad items of several kinds, how the body wraps the items)
CASES: dict[str, tuple[Callable[[int], Any], list[Any], Callable[[list[Any]], Any]]] = {
    "alertmanager": (
        _am_alert,
        [{"labels": [{"a": 1}]}, 7, {"labels": {"a": "b"}, "status": "weird"}],
        _alertmanager,
    ),
    "grafana": (
        _am_alert,
        [{"labels": [{"a": 1}]}, "x", {"labels": {"a": "b"}, "status": "pending?"}],
        _alertmanager,
    ),
    "datadog": (_datadog_item, [[1], "x", None], list),
    "custom": (_custom_item, [{"title": ""}, 3, {"title": "t", "status": "maybe"}], list),
    "pagerduty-events": (
        _pd_event,
        [
            {"routing_key": ROUTING_KEY},
            {"routing_key": ROUTING_KEY, "event_action": "explode"},
            {"routing_key": ROUTING_KEY, "event_action": "resolve"},
        ],
        list,
    ),
}


def delivery(provider: str, headers: dict[str, str] | None = None) -> Delivery:
    return Delivery("t1", provider, "e1", RECEIVED, headers or {})


def titles(records: list[Normalised]) -> list[str]:
    return [getattr(record, "title", "") for record in records]


@pytest.mark.parametrize("provider", sorted(CASES))
def test_one_bad_item_skips_only_itself_and_is_named(provider: str) -> None:
    good, bad, wrap = CASES[provider]
    items = [good(0), bad[0], good(2), bad[1], good(4), bad[2]]
    with pytest.raises(PartialPayload) as caught:
        PROVIDERS[provider].normalise(wrap(items), delivery(provider))
    partial = caught.value
    assert len(partial.records) == 3
    assert [s.index for s in partial.skipped] == [1, 3, 5]
    assert partial.unread == "1,3,5"
    assert partial.total == 6
    message = str(partial)
    assert message.startswith("3 of 6 items could not be read and were skipped")
    for skipped in partial.skipped:
        assert skipped.reason in message
        names = (f"alerts[{skipped.index}]", f"item {skipped.index}", f"event {skipped.index}")
        assert skipped.reason.split(":")[0] in names


@pytest.mark.parametrize("provider", sorted(CASES))
def test_a_replay_reads_only_the_items_skipped_before(provider: str) -> None:
    good, _, wrap = CASES[provider]
    # What was skipped (1 and 3) has since become readable (e.g. after an upgrade);
    # what was processed (0, 2) must not be read again.
    items = [good(0), good(1), good(2), good(3)]
    replay = delivery(provider, {UNREAD_ITEMS_HEADER: "1,3"})
    records = PROVIDERS[provider].normalise(wrap(items), replay)
    assert len(records) == 2
    assert all(("1" in t or "3" in t) and "0" not in t and "2" not in t for t in titles(records))


@pytest.mark.parametrize("provider", sorted(CASES))
def test_a_replay_whose_items_are_still_bad_fails_alone(provider: str) -> None:
    good, bad, wrap = CASES[provider]
    items = [good(0), bad[0], good(2), bad[1]]
    replay = delivery(provider, {UNREAD_ITEMS_HEADER: "1,3"})
    with pytest.raises(PayloadError) as caught:
        PROVIDERS[provider].normalise(wrap(items), replay)
    assert not isinstance(caught.value, PartialPayload)
    assert str(caught.value).startswith("none of the 2 items could be read")


@pytest.mark.parametrize("provider", sorted(CASES))
def test_a_lone_bad_item_keeps_its_own_error(provider: str) -> None:
    _, bad, wrap = CASES[provider]
    with pytest.raises(PayloadError) as caught:
        PROVIDERS[provider].normalise(wrap([bad[2]]), delivery(provider))
    assert not isinstance(caught.value, PartialPayload)
    assert not str(caught.value).startswith("none of")


def test_indexes_are_written_as_runs_and_read_back() -> None:
    indexes = [9, 0, 3, 4, 5, 11, 10]
    assert format_indexes(indexes) == "0,3-5,9-11"
    assert parse_indexes("0,3-5,9-11") == frozenset(indexes)
    for nonsense in ("", "a", "5-3", "-1", "0-99999999999"):
        assert parse_indexes(nonsense) is None


def test_a_sender_cannot_set_which_items_are_read() -> None:
    stored = redact("alertmanager", {UNREAD_ITEMS_HEADER: "0", "user-agent": "am"}, b"{}", [])
    assert stored.headers == {"user-agent": "am"}

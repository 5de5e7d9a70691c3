"""The contract every provider module fulfils, and the errors it may raise.

A provider module is pure: it proves a request came from the integration
(``verify``) and turns a parsed body into canonical records (``normalise``). It never
touches storage or the network, which is what lets the same module serve the
embedded and the production deployments and be tested with nothing but payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from dd0c_alert.domain.models import Normalised

AuthReason = Literal[
    "missing_signature",
    "signature_mismatch",
    "timestamp_expired",
    "invalid_timestamp",
    "unknown_integration",
    "secret_rotated",
]


class AuthError(Exception):
    """The request does not prove it comes from the integration (answered 401)."""

    def __init__(self, reason: AuthReason, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason: AuthReason = reason
        self.detail = detail or reason


class PayloadError(Exception):
    """The body parsed as JSON but is not something this provider sends.

    Permanent: retrying cannot help, so the event goes straight to the dead-letter
    store with this message, ready to replay once the cause is fixed.
    """


#: On a stored event: the indexes of the items of its list (the alerts of a group, the
#: events of a batch) still to read, e.g. ``3,7-9``; the others were processed. Set by
#: the worker on the dead letter of a partly readable event, so that its replay reads
#: only what was skipped (nothing is processed twice). Ours alone: a sender's is dropped.
UNREAD_ITEMS_HEADER = "x-dd0c-unread-items"


@dataclass(frozen=True, slots=True)
class Skipped:
    """One item of a list-shaped payload that could not be read, and why."""

    index: int
    reason: str


class PartialPayload(PayloadError):
    """Some items of a list-shaped payload could not be read; ``records`` are the others'.

    One malformed alert must not take its group down: the records are processed and the
    event is kept as a dead letter naming the ``skipped`` items (index and reason), whose
    replay reads only those (``UNREAD_ITEMS_HEADER``).
    """

    def __init__(self, records: list[Normalised], skipped: list[Skipped], total: int) -> None:
        self.records = records
        self.skipped = skipped
        self.total = total
        reasons = "; ".join(item.reason for item in skipped[:_LISTED])
        more = f"; and {len(skipped) - _LISTED} more" if len(skipped) > _LISTED else ""
        super().__init__(
            f"{len(skipped)} of {total} items could not be read and were skipped (the other "
            f"{len(records)} were processed; a replay reads only the skipped ones): "
            f"{reasons}{more}"
        )

    @property
    def unread(self) -> str:
        """The skipped indexes as ``UNREAD_ITEMS_HEADER`` holds them."""
        return format_indexes([item.index for item in self.skipped])


#: How many skipped items a dead letter's error names one by one.
_LISTED = 20
#: Above any index a body within the size cap can hold: bounds what a header expands to.
_MAX_INDEX = 10_000_000


def format_indexes(indexes: list[int]) -> str:
    """Sorted indexes as runs (``0,3-5,9``): a group of 5,000 bad alerts stays short."""
    runs: list[str] = []
    ordered = sorted(set(indexes))
    start = 0
    for position, index in enumerate(ordered):
        last = position + 1 == len(ordered) or ordered[position + 1] != index + 1
        if last:
            first = ordered[start]
            runs.append(str(first) if first == index else f"{first}-{index}")
            start = position + 1
    return ",".join(runs)


def parse_indexes(value: str) -> frozenset[int] | None:
    """The indexes of ``format_indexes`` text; ``None`` (read everything) if unreadable."""
    result: set[int] = set()
    try:
        for run in value.split(","):
            first, _, last = run.strip().partition("-")
            low, high = int(first), int(last or first)
            if low < 0 or high < low or high > _MAX_INDEX:
                return None
            result.update(range(low, high + 1))
    except ValueError:
        return None
    return frozenset(result)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What arrived, as a provider needs to see it to normalise.

    ``headers`` has lower-case names and never includes credentials.
    """

    tenant_id: str
    provider: str
    event_id: str
    received_at: datetime
    headers: Mapping[str, str]

    def unread_items(self) -> frozenset[int] | None:
        """The only items of a list payload to read (a replay of a partly read event),
        or ``None``: all of them."""
        value = self.headers.get(UNREAD_ITEMS_HEADER)
        return None if value is None else parse_indexes(value)


class Provider(Protocol):
    """A provider module (``dd0c_alert.providers.<name>``) satisfies this."""

    NAME: str
    #: Header names (lower case) carrying the provider's delivery id, remembered for
    #: 24 h so a redelivery is answered ``duplicate``. ``idempotency-key`` is always honoured.
    DELIVERY_ID_HEADERS: tuple[str, ...]

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
        """Raise AuthError unless the request proves knowledge of ``secret``."""

    def normalise(self, payload: Any, delivery: Delivery) -> list[Normalised]:
        """Canonical records for a parsed body; PayloadError if it is not understood."""

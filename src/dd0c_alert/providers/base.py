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

"""Tolerant readers for provider payloads.

Real senders omit fields, send numbers as strings and nest what docs say is flat;
these helpers coerce what can be understood and return a default otherwise, so a
provider module raises PayloadError only when the body truly is not its kind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from dd0c_alert.domain.models import Normalised

from .base import Delivery, PartialPayload, PayloadError, Skipped

_MAX_TEXT = 8192  # titles and descriptions beyond this are truncated, not rejected


def text(value: Any, limit: int = _MAX_TEXT) -> str:
    """A display string for any scalar; containers and None become ''."""
    if type(value) is str:  # nearly every call (labels, titles): skip the type tests
        result = value.strip()
    elif value is None or isinstance(value, dict | list | tuple):
        return ""
    elif isinstance(value, bool):
        return "true" if value else "false"
    else:
        result = str(value).strip()
    # Lone surrogates cannot be stored as UTF-8, and PostgreSQL's text and JSONB cannot
    # hold NUL: clean both rather than fail, the same way whichever store is behind.
    if not result.isascii():  # ASCII holds no surrogate: skip the round trip
        result = result.encode("utf-8", "replace").decode("utf-8")
    return result.replace("\x00", "")[:limit]


def first_text(*values: Any) -> str:
    for value in values:
        result = text(value)
        if result:
            return result
    return ""


def labels(value: Any) -> dict[str, str]:
    """A str→str mapping from whatever the provider sent as labels or tags.

    Accepts a mapping, or a list of ``key:value`` / ``key=value`` strings (Datadog tags).
    """
    result: dict[str, str] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = text(key, 256)
            if name:
                result[name] = text(item, 1024)
    elif isinstance(value, list | tuple):
        for item in value:
            tag = text(item, 1024)
            if not tag:
                continue
            sep = ":" if ":" in tag else "=" if "=" in tag else ""
            if sep:
                key, _, val = tag.partition(sep)
                result[key.strip()[:256]] = val.strip()
            else:
                result[tag[:256]] = ""
    return result


def timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text or seconds / milliseconds since the epoch.

    Go's zero time (``0001-01-01T00:00:00Z``, Alertmanager's "not set") is None.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (
        isinstance(value, str) and not _looks_iso(value) and _is_number(value)
    ):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer too large for a float is not a time
            return None
        if number <= 0:
            return None
        if number > 1e14:  # microseconds
            number /= 1e6
        elif number > 1e11:  # milliseconds
            number /= 1e3
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    # Longer texts are no times; the cap bounds the cache's memory.
    return _text_time(value) if len(value) <= 64 else _text_time.__wrapped__(value)


@functools.lru_cache(maxsize=4096)
def _text_time(value: str) -> datetime | None:
    """Cached: a notification's alerts share times (one ``startsAt`` per rule
    evaluation, the same ``startsAt`` in every resend), and parsing costs microseconds."""
    raw = value.strip()
    if not raw or raw.startswith("0001-01-01"):
        return None
    raw = raw.replace(" UTC", "+00:00").replace("Z", "+00:00").replace("z", "+00:00")
    # Go and some SDKs send nanoseconds; Python accepts at most microseconds.
    if "." in raw:
        head, _, rest = raw.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        raw = (
            head + "." + rest[: min(digits, 6)] + rest[digits:] if digits else head + rest[digits:]
        )
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past datetime.max in UTC
        return None


def _looks_iso(value: str) -> bool:
    """Starts like an ISO 8601 date (``2025-``), which no number does: most times are
    these, and ``float`` would raise on each of them."""
    return value[4:5] == "-" and value[:4].isdigit()


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """The value as a JSON object, or PayloadError naming what was expected."""
    if not isinstance(value, Mapping):
        raise PayloadError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def items(value: Any, what: str) -> list[Any]:
    """A JSON array (or a single object treated as a one-item array)."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return [value]
    raise PayloadError(f"{what} must be a JSON object or array, got {type(value).__name__}")


def each(
    objects: Sequence[Any],
    read: Callable[[int, Any], Normalised],
    delivery: Delivery,
    name: Callable[[int], str],
) -> list[Normalised]:
    """``read(index, item)`` for each item of a list payload (an alert group, a batch).

    An item ``read`` refuses (PayloadError) is skipped, not the whole payload: if others
    were read, PartialPayload carries their records and names each skipped item (by
    ``name(index)`` and reason). If none could be, the error is PayloadError, the item's
    own when there was one. Items outside ``delivery.unread_items()`` were processed
    before (this is the replay of a partly read event) and are passed over.
    """
    only = delivery.unread_items()
    records: list[Normalised] = []
    skipped: list[Skipped] = []
    errors: list[PayloadError] = []
    for index, item in enumerate(objects):
        if only is not None and index not in only:
            continue
        try:
            records.append(read(index, item))
        except PartialPayload:
            raise
        except PayloadError as exc:
            skipped.append(Skipped(index, f"{name(index)}: {exc}"))
            errors.append(exc)
    if not skipped:
        return records
    if len(errors) == 1 and not records:
        raise errors[0]
    if not records:
        reasons = "; ".join(item.reason for item in skipped[:20])
        raise PayloadError(f"none of the {len(skipped)} items could be read: {reasons}")
    raise PartialPayload(records, skipped, len(records) + len(skipped))


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]…`` through nested JSON objects; None as soon as one is missing."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


_BOM = b"\xef\xbb\xbf"


def json_document(body: bytes) -> Any:
    """Parse a webhook body; a UTF-8 byte-order mark (some .NET senders add one, and
    RFC 8259 lets receivers ignore it) is skipped. Raises orjson.JSONDecodeError."""
    return orjson.loads(body[3:] if body.startswith(_BOM) else body)

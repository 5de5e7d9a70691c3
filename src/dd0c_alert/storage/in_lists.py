"""``IN`` lists padded to a few lengths, so a query has a few SQL texts, not hundreds.

SQLAlchemy writes ``IN (?, ?, ...)`` with one placeholder per value, so every list
length is another SQL text: another statement for SQLite to prepare, and another
entry in the driver's statement cache (128 per connection), whose older entries it
pushes out. The worker asks by the fingerprints of each batch, and batch sizes vary
with the load: the cache held a statement per size seen, prepared again and again,
and the worker's process grew as the sizes it had seen did.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def padded(values: Iterable[T]) -> list[T]:
    """``values`` with the last repeated up to the next power of two (a value listed
    twice in ``IN`` matches the same rows once)."""
    found = list(values)
    if len(found) > 1:
        found += found[-1:] * ((1 << (len(found) - 1).bit_length()) - len(found))
    return found

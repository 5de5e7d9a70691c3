"""Identifiers: the ULID layout that ids, cursors and paging rely on."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from dd0c_alert.domain.ids import first_id_at, new_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference(ms: int, randomness: int) -> str:
    """The layout spelled out: 130 bits, 5 at a time, most significant first."""
    value = (ms << 80) | randomness
    return "".join(CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**32))
def test_the_encoding_is_the_ulid_layout(ms: int, seed: int) -> None:
    random.seed(seed)
    expected = reference(ms, random.getrandbits(80))
    random.seed(seed)
    assert new_id(ms) == expected


@given(st.integers(0, 2**48 - 2), st.integers(1, 2**20))
def test_ids_sort_by_their_millisecond(ms: int, later: int) -> None:
    assert new_id(ms) < new_id(min(ms + later, 2**48 - 1))


def test_a_known_id() -> None:
    random.seed(1)
    assert new_id(1_733_380_000_000) == "01JEAQZJ80V3RS3DTR98H6BCFN"


@given(st.integers(1, 2**47), st.integers(0, 2**32))
def test_the_first_id_of_a_millisecond_sorts_between_it_and_the_one_before(
    ms: int, seed: int
) -> None:
    random.seed(seed)
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    first = first_id_at(moment)
    minted = int(moment.timestamp() * 1000)  # the millisecond the float lands on
    assert new_id(minted - 1) < first <= new_id(minted)
    assert first == new_id(minted)[:10] + "0" * 16

"""Time-ordered identifiers (ULID layout), so ids sort by creation and page cleanly.

The random part identifies, it does not protect: it comes from ``random`` rather than
``os.urandom``, whose system call releases the GIL and, on a busy server, costs
hundreds of microseconds to win back.
"""

from __future__ import annotations

import random
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48-bit millisecond time, then 80 random bits."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms << 80) | random.getrandbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))

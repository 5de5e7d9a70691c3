"""Credentials out of raw deliveries, before anything stores them.

Ingestion calls :func:`redact` after a delivery is authenticated and before it is
queued, so the queue, the archive, the dead-letter store and every answer made from
them (``GET /v1/alerts/{id}/raw``, ``dd0c-alert dlq show``) only ever see the redacted
copy. ``dd0c-alert redact-stored`` applies :func:`redact_body` with ``same_length`` to
what older versions stored.

What goes:

- **Headers** whose name says they authenticate (contains ``token``, ``secret``,
  ``key``, ``signature``, ``auth``, ``password``, ``cookie``, ``session`` or
  ``credential``, in any case), except ``Idempotency-Key``, which identifies a delivery
  and proves nothing; and any header whose value contains the integration secret.
- **Body**: the ``routing_key`` of every PagerDuty Events v2 event (it *is* the
  integration secret), and every occurrence of the integration secret inside any JSON
  string, escaped or not. Each is replaced by ``[redacted]``; the rest of the body keeps
  its bytes, so the document stays valid JSON and means what it meant.

What was removed is noted in the delivery's own header ``x-dd0c-redacted``, e.g.
``body:routing_key, header:authorization`` (names only, never values).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from .base import UNREAD_ITEMS_HEADER

MARKER = "[redacted]"
#: The header that carries the note of what was redacted from a delivery.
NOTE_HEADER = "x-dd0c-redacted"
#: Body members replaced whole wherever a provider puts them at event level.
PAGERDUTY_FIELDS = frozenset({"routing_key"})
#: Shorter secrets are not searched for inside strings (they would match ordinary
#: text); generated secrets are 43 characters.
MIN_SECRET_LENGTH = 8

_CREDENTIAL_NAME = re.compile(
    r"token|secret|key|signature|auth|password|passwd|cookie|session|credential", re.I
)
#: Headers whose names look like credentials but identify a delivery instead.
_NOT_CREDENTIALS = frozenset({"idempotency-key"})
#: Hop-by-hop and transport headers: nothing about the event, never stored, not noted.
_TRANSPORT = frozenset(
    {"connection", "content-length", "transfer-encoding", "accept-encoding", "keep-alive"}
)
# A JSON string token, or a structural character; numbers, literals and whitespace are
# skipped. Outside strings a valid JSON text has no '"', so this never cuts a string.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]', re.S)
_ESCAPABLE = frozenset('"\\/\b\f\n\r\t')


@functools.lru_cache(maxsize=512)  # bounded: header names are the sender's choice
def credential_header(name: str) -> bool:
    """Whether a header of this (lower-case) name may carry a credential."""
    return name not in _NOT_CREDENTIALS and _CREDENTIAL_NAME.search(name) is not None


@dataclass(slots=True)
class Redacted:
    """A delivery's body and headers fit to store, and what was taken out."""

    body: bytes
    headers: dict[str, str]
    fields: list[str] = field(default_factory=list)
    dropped_headers: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        """The ``x-dd0c-redacted`` value: ``body:<member>``, ``header:<name>``, …"""
        return ", ".join(
            [f"body:{name}" for name in self.fields]
            + [f"header:{name}" for name in self.dropped_headers]
        )


def redact(
    provider: str, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
) -> Redacted:
    """The storable copy of an authenticated delivery (``headers`` lower-case).

    A sender's ``x-dd0c-unread-items`` is dropped: only the worker sets it, on the dead
    letter of a partly read event, and a sender's would make alerts go unread."""
    fields_ = PAGERDUTY_FIELDS if provider == "pagerduty-events" else frozenset()
    new_body, names = redact_body(body, secrets, fields_)
    kept, dropped = redact_headers(headers, secrets)
    kept.pop(UNREAD_ITEMS_HEADER, None)
    result = Redacted(new_body, kept, names, dropped)
    if result.fields or result.dropped_headers:
        kept[NOTE_HEADER] = result.note
    return result


def redact_headers(
    headers: Mapping[str, str], secrets: Sequence[str]
) -> tuple[dict[str, str], list[str]]:
    """The headers to keep, and the names of the credential headers dropped.

    A ``x-dd0c-redacted`` the sender set is dropped: that note is ours alone."""
    needles = _needles(secrets)
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in headers.items():
        if name in _TRANSPORT or name == NOTE_HEADER:
            continue
        if credential_header(name) or any(secret in value for secret in needles):
            dropped.append(name)
        else:
            kept[name] = value
    return kept, dropped


def redact_body(
    body: bytes,
    secrets: Iterable[str],
    fields: frozenset[str] = frozenset(),
    *,
    same_length: bool = False,
) -> tuple[bytes, list[str]]:
    """``body`` (a JSON text, or several concatenated) with credentials replaced, and
    the names of the members whose keys or values changed, in order of first change.

    ``fields``: members replaced whole when they belong to an event, i.e. to the
    top-level object or to an object that is an element of a top-level array.

    ``same_length``: the result has exactly ``len(body)`` bytes, for rewriting stored
    archive segments in place (payloads there are addressed by offset and length).
    A changed string is followed by spaces (JSON whitespace) up to its old length;
    where ``[redacted]`` would be longer than what it replaces, each replaced
    character becomes ``*`` instead.
    """
    needles = _needles(secrets)
    if not fields and not _may_contain(body, needles):
        return body, []
    out: list[bytes] = []
    names: list[str] = []
    done = 0
    # One frame per open container: [is_object, current key, expecting a key].
    stack: list[list[object]] = []
    for match in _TOKEN.finditer(body):
        token = match.group()
        first = token[0]
        if first == 0x22:  # '"'
            top = stack[-1] if stack else None
            is_key = top is not None and top[0] is True and top[2] is True
            if is_key:
                assert top is not None
                top[1] = _decode(token) if b"\\" in token else token[1:-1].decode()
            replacement = _replace_string(token, needles, same_length)
            if (
                replacement is None
                and not is_key
                and top is not None
                and top[1] in fields
                and _event_level(stack)
            ):
                replacement = _whole(token, same_length)
            if replacement is not None and replacement != token:
                out.append(body[done : match.start()])
                out.append(replacement)
                done = match.end()
                name = str(top[1]) if top is not None and top[0] is True else "(array item)"
                if is_key:
                    name = "(member name)"
                if name not in names:
                    names.append(name)
        elif first in b"{[":
            stack.append([first == 0x7B, None, first == 0x7B])
        elif first in b"}]":
            if stack:
                stack.pop()
        elif first == 0x3A:  # ':'
            if stack:
                stack[-1][2] = False
        elif stack and stack[-1][0] is True:  # ','
            stack[-1][2] = True
    if not names:
        return body, []
    out.append(body[done:])
    return b"".join(out), names


def _needles(secrets: Iterable[str]) -> list[str]:
    return sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def _may_contain(body: bytes, needles: Sequence[str]) -> bool:
    """False only when no JSON string of ``body`` can decode to contain a needle: not
    literally there, and no escape that could spell one of its characters."""
    if not needles:
        return False
    if b"\\u" in body:
        return True
    for needle in needles:
        if orjson.dumps(needle)[1:-1] in body:
            return True
        if b"\\" in body and _ESCAPABLE.intersection(needle):
            return True
    return False


def _decode(token: bytes) -> str:
    value = orjson.loads(token)
    assert isinstance(value, str)
    return value


def _event_level(stack: list[list[object]]) -> bool:
    return len(stack) == 1 or (len(stack) == 2 and stack[0][0] is False)


def _replace_string(token: bytes, needles: Sequence[str], same_length: bool) -> bytes | None:
    """The token with every needle replaced, or None if it contains none."""
    if not needles:
        return None
    if b"\\" not in token and not any(orjson.dumps(n)[1:-1] in token for n in needles):
        return None
    value = _decode(token)
    present = [needle for needle in needles if needle in value]
    if not present:
        return None
    return _fit(token, value, present, same_length)


def _whole(token: bytes, same_length: bool) -> bytes | None:
    value = _decode(token)
    if value in (MARKER, "") or set(value) == {"*"}:
        return None  # already redacted
    return _fit(token, value, [value], same_length)


def _fit(token: bytes, value: str, present: Sequence[str], same_length: bool) -> bytes:
    def replaced(mask: Callable[[str], str]) -> bytes:
        text = value
        for needle in present:
            text = text.replace(needle, mask(needle))
        return orjson.dumps(text)

    new = replaced(lambda _: MARKER)
    if not same_length:
        return new
    if len(new) > len(token):
        # Each replaced character took at least one byte and '*' takes one; orjson
        # writes the rest at its shortest, so this is never longer than the original.
        new = replaced(lambda needle: "*" * len(needle))
    return new + b" " * (len(token) - len(new))

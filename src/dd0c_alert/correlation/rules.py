"""Human-made rules: matchers, silences, inhibitions, and the governance that decides
whether a matching rule may suppress delivery (design §6.7, §6.10).

Matchers follow Alertmanager: every matcher must match; ``=``/``!=`` compare exactly,
``=~``/``!~`` are regexes anchored at both ends; a missing label equals ``""``.
Regexes have RE2 semantics, as in Alertmanager (Go's ``regexp`` is RE2): matching takes
time linear in the input whatever the pattern, so no tenant's rule can stall the worker
that every tenant shares. Python's ``re`` backtracks: ``(a+)+$`` against 36 ``a`` and a
``!`` ran for minutes while holding the GIL.

The guiding rule is the product's first promise, *never eat an alert*: whatever is
broken or ambiguous in a rule makes it suppress less, never more. An invalid regex
makes its matcher fail, a silence without matchers or with an unreadable schedule
never applies, an unknown governance mode behaves like ``audit``, and critical alerts
and never-suppress services are always delivered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, available_timezones

import re2

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity

from .model import InhibitRule, Matcher, Silence, TenantSettings

Op = Literal["=", "!=", "=~", "!~"]

#: Pseudo-labels taken from the canonical fields only when the alert has no real label
#: of that name (a provider's own ``environment`` label is the more precise one).
_SOFT_PSEUDO = ("environment", "title", "fingerprint", "resource")
#: Pseudo-labels that always reflect the canonical field, so one rule reads the same
#: for every provider (``severity="medium"``, not each tool's own spelling).
_HARD_PSEUDO = ("service", "severity", "source")

#: Longest regex a matcher may hold, in characters. RE2 matches in linear time, but
#: compiling is linear in the pattern and its automaton lives in memory per pattern.
MAX_PATTERN_LENGTH = 1024
#: Longest value of an ``=`` / ``!=`` matcher and longest label name, in characters:
#: providers keep label values to 1,024 characters and names to 256 (``parse.labels``),
#: so a longer one could never match, and a rule of megabytes would be read on every
#: alert and every configuration load.
MAX_VALUE_LENGTH = MAX_PATTERN_LENGTH
MAX_NAME_LENGTH = 256
#: Memory one compiled pattern may use; a pattern that needs more is refused.
MAX_PATTERN_MEMORY = 1 << 20


def _re2_options() -> object:
    options = re2.Options()
    options.max_mem = MAX_PATTERN_MEMORY
    options.log_errors = False
    return options


_RE2_OPTIONS = _re2_options()


# --------------------------------------------------------------------------- labels


def label_view(alert: CanonicalAlert) -> dict[str, str]:
    """The labels rules match against: the alert's own labels plus pseudo-labels.

    ``service``, ``severity`` and ``source`` always hold the canonical values, so a
    rule such as ``severity="critical"`` means the same whichever tool sent the alert
    (the raw label may say ``P1`` or ``page``). ``environment``, ``title``,
    ``fingerprint`` and ``resource`` are filled from the canonical fields only when
    the alert carries no real label of that name. Empty values are left out, as in
    Alertmanager, where an empty label is the same as an absent one.
    """
    fields = {name: str(getattr(alert, name)) for name in (*_SOFT_PSEUDO, *_HARD_PSEUDO)}
    return _view(alert.labels, fields)


def stored_label_view(stored: Mapping[str, Any]) -> dict[str, str]:
    """:func:`label_view` of an alert as the store returns it (a dict of its columns),
    so a preview of a rule over stored alerts matches exactly what the worker would."""
    fields = {name: str(stored.get(name) or "") for name in (*_SOFT_PSEUDO, *_HARD_PSEUDO)}
    labels = stored.get("labels") or {}
    return _view({str(k): str(v) for k, v in labels.items()}, fields)


def _view(labels: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    soft = {name: fields[name] for name in _SOFT_PSEUDO}
    hard = {name: fields[name] for name in _HARD_PSEUDO}
    view = {**soft, **labels, **hard}
    return {name: value for name, value in view.items() if value}


# --------------------------------------------------------------------------- matching


class Pattern(Protocol):
    """What matching needs of a compiled RE2 pattern (the binding ships no types)."""

    def fullmatch(self, text: str) -> object | None: ...


def compile_pattern(pattern: str) -> Pattern:
    """Compile a user's regex with RE2, or raise ``ValueError`` saying why not.

    Refused: patterns over :data:`MAX_PATTERN_LENGTH`, text that is not valid Unicode
    (a lone surrogate), syntax RE2 lacks (backreferences, lookaround), and patterns
    whose automaton would outgrow :data:`MAX_PATTERN_MEMORY`.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"regex is {len(pattern)} characters long; the limit is {MAX_PATTERN_LENGTH}"
        )
    try:
        pattern.encode()
    except UnicodeEncodeError:
        raise ValueError("regex is not valid Unicode (it holds a lone surrogate)") from None
    try:
        compiled: Pattern = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        raise ValueError(
            f"{detail} (regexes use RE2 syntax: no backreferences or lookaround)"
        ) from None
    return compiled


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> Pattern | None:
    """Compiled once per pattern; ``None`` when RE2 refuses it (a rule stored before
    matching used RE2 may hold one: it then matches nothing, so suppresses nothing)."""
    try:
        return compile_pattern(pattern)
    except ValueError:
        return None


def _matches_one(matcher: Matcher, labels: Mapping[str, str]) -> bool:
    value = labels.get(matcher.name, "")
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    pattern = _regex(matcher.value)
    if pattern is None:  # a broken rule matches nothing, so it suppresses nothing
        return False
    hit = pattern.fullmatch(value) is not None
    return hit if matcher.op == "=~" else not hit


def matches_labels(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """All matchers match ``labels`` (an empty matcher list matches everything)."""
    return all(_matches_one(m, labels) for m in matchers)


def matches(matchers: Sequence[Matcher], alert: CanonicalAlert) -> bool:
    """All matchers match the alert's :func:`label_view`."""
    return matches_labels(matchers, label_view(alert))


# --------------------------------------------------------------------------- matcher text

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*")
_OP = re.compile(r"=~|!~|!=|=")
_BARE_VALUE = re.compile(r'[^\s,{}"\\]+')
_UNESCAPE = {"n": "\n", '"': '"', "\\": "\\"}
_OPS: dict[str, Op] = {"=": "=", "!=": "!=", "=~": "=~", "!~": "!~"}


class _Cursor:
    """A position in matcher text, with errors that say where and what was expected."""

    def __init__(self, text: str, *, check_regex: bool = True) -> None:
        self.text = text
        self.pos = 0
        self.check_regex = check_regex

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def error(self, expected: str) -> ValueError:
        got = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of text"
        return ValueError(
            f"bad matchers {self.text[:200]!r}: expected {expected} at column {self.pos + 1}, "
            f"found {got}"
        )


def _quoted(cursor: _Cursor) -> str:
    """A double-quoted string. ``\\"``, ``\\\\`` and ``\\n`` are escapes; any other
    backslash stays literal (as in Alertmanager), so ``"db\\.prod"`` is a regex."""
    start = cursor.pos
    cursor.pos += 1  # the opening quote
    out: list[str] = []
    text = cursor.text
    while cursor.pos < len(text):
        char = text[cursor.pos]
        cursor.pos += 1
        if char == '"':
            return "".join(out)
        if char == "\\" and cursor.pos < len(text):
            escaped = text[cursor.pos]
            cursor.pos += 1
            out.append(_UNESCAPE.get(escaped, "\\" + escaped))
        else:
            out.append(char)
    cursor.pos = start
    raise cursor.error("a closing double quote for the string starting here")


def _name(cursor: _Cursor) -> str:
    name = _quoted(cursor) if cursor.peek() == '"' else cursor.take(_NAME) or ""
    if not name:
        raise cursor.error("a label name")
    return name


def _value(cursor: _Cursor, name: str) -> str:
    if cursor.peek() == '"':
        return _quoted(cursor)
    value = cursor.take(_BARE_VALUE)
    if value is None:
        raise cursor.error(f'a value for {name} (write {name}="" to match an absent label)')
    return value


def _matcher(cursor: _Cursor) -> Matcher:
    name = _name(cursor)
    cursor.skip_space()
    op_text = cursor.take(_OP)
    if op_text is None:
        raise cursor.error("one of =, !=, =~, !~")
    op = _OPS[op_text]
    cursor.skip_space()
    value_at = cursor.pos
    value = _value(cursor, name)
    if cursor.check_regex:
        _check_lengths(cursor, name, op, value)
    if op in ("=~", "!~") and cursor.check_regex:
        try:
            compile_pattern(value)
        except ValueError as exc:
            cursor.pos = value_at
            raise ValueError(
                f"bad matchers {cursor.text[:200]!r}: invalid regex for {name[:100]} at "
                f"column {value_at + 1}: {exc}"
            ) from None
    return Matcher(name, op, value)


def _check_lengths(cursor: _Cursor, name: str, op: str, value: str) -> None:
    """Refuse a label name or an equality value longer than any label can be (regexes
    have their own limit, checked when compiled)."""
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"bad matchers {cursor.text[:200]!r}: label name {name[:100]}… is {len(name)} "
            f"characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if op in ("=", "!=") and len(value) > MAX_VALUE_LENGTH:
        raise ValueError(
            f"bad matchers {cursor.text[:200]!r}: the value for {name[:100]} is {len(value)} "
            f"characters long; the limit is {MAX_VALUE_LENGTH}"
        )


def _closed(cursor: _Cursor, braced: bool) -> bool:
    """At the end of the matcher list: its ``}``, or the end of unbraced text."""
    return cursor.peek() == "}" if braced else cursor.at_end()


def parse_matchers(text: str, *, stored: bool = False) -> tuple[Matcher, ...]:
    """Parse ``{service="db", severity=~"high|critical", env!="dev"}``.

    Braces are optional; matchers are comma-separated (a trailing comma is fine);
    values are double-quoted, or bare words without spaces, commas, braces, quotes or
    backslashes. Regexes are checked here, so matching never meets a broken one.
    Raises ``ValueError`` saying what was expected where. ``"{}"`` or ``""`` give no
    matchers — which match everything, so callers creating silences should insist on
    at least one.

    Label names over :data:`MAX_NAME_LENGTH` and ``=`` / ``!=`` values over
    :data:`MAX_VALUE_LENGTH` characters are refused (no label is that long).

    ``stored=True`` reads a rule saved earlier: its regexes and lengths are not checked
    again, so a rule saved before matching used RE2 (or before the length limits) still
    loads instead of making the tenant's whole configuration unreadable.
    """
    cursor = _Cursor(text, check_regex=not stored)
    cursor.skip_space()
    braced = cursor.peek() == "{"
    if braced:
        cursor.pos += 1
    found: list[Matcher] = []
    while True:
        cursor.skip_space()
        if _closed(cursor, braced):
            break
        if cursor.at_end():
            raise cursor.error("a closing }")
        found.append(_matcher(cursor))
        cursor.skip_space()
        if cursor.peek() == ",":
            cursor.pos += 1
        elif not _closed(cursor, braced):
            raise cursor.error("a comma" + (" or }" if braced else " or the end"))
    if braced:
        cursor.pos += 1
        cursor.skip_space()
        if not cursor.at_end():
            raise cursor.error("nothing after the closing }")
    return tuple(found)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """The text :func:`parse_matchers` reads back to the same matchers. Values are
    always quoted; names only when they are not plain identifiers."""
    parts = [
        (m.name if _NAME.fullmatch(m.name) else _quote(m.name)) + m.op + _quote(m.value)
        for m in matchers
    ]
    return "{" + ", ".join(parts) + "}"


# --------------------------------------------------------------------------- schedules

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_CLAUSE = re.compile(r"\s*(?P<days>\S.*?)\s+(?P<start>[0-9:]+)\s*-\s*(?P<end>[0-9:]+)\s*")
_MINUTES_PER_DAY = 24 * 60


_ZONE = re.compile(r"\s*tz\s*=\s*(?P<name>\S*)\s*", re.IGNORECASE)
#: How much of an unknown zone's name an error quotes.
_ZONE_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class ScheduleWindow:
    """One recurring window: on each of ``days`` (0 = Monday) from minute ``start`` of
    the day until minute ``end``, on the wall clock of ``zone``. When ``end <= start``
    the window crosses midnight and its end lies on the next day."""

    days: frozenset[int]
    start: int
    end: int
    zone: tzinfo = UTC


def _day(word: str, clause: str) -> int:
    word = word.strip().lower()
    for names in (_DAYS, _FULL_DAYS):
        if word in names:
            return names.index(word)
    raise ValueError(
        f"bad schedule {clause.strip()!r}: unknown day {word!r} (use mon..sun, mon-fri or daily)"
    )


def _days(text: str, clause: str) -> frozenset[int]:
    """``daily``, or a comma list of days and ranges; a range may wrap (``fri-mon``)."""
    if text.strip().lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        start = _day(first, clause)
        end = _day(last, clause) if dash else start
        days.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return frozenset(days)


def _clock(text: str, clause: str, *, is_end: bool) -> int:
    found = _CLOCK.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"bad schedule {clause.strip()!r}: expected HH:MM, found {text!r}")
    hours, minutes = int(found.group(1)), int(found.group(2))
    minute_of_day = hours * 60 + minutes
    limit = _MINUTES_PER_DAY if is_end else _MINUTES_PER_DAY - 1
    if minutes > 59 or minute_of_day > limit:
        raise ValueError(f"bad schedule {clause.strip()!r}: {text!r} is not a time of day")
    return minute_of_day


def _window(clause: str) -> ScheduleWindow:
    found = _CLAUSE.fullmatch(clause)
    if found is None:
        raise ValueError(
            f'bad schedule {clause.strip()!r}: expected "<days> HH:MM-HH:MM", '
            'e.g. "sat,sun 02:00-04:00"'
        )
    start = _clock(found["start"], clause, is_end=False)
    end = _clock(found["end"], clause, is_end=True)
    if start == end:
        raise ValueError(f"bad schedule {clause.strip()!r}: the window is empty (start = end)")
    days = _days(found["days"].replace(" ", ""), clause)
    return ScheduleWindow(days, start, end % _MINUTES_PER_DAY)


def parse_schedule(text: str) -> tuple[ScheduleWindow, ...]:
    """Parse a recurring window: ``"<days> HH:MM-HH:MM"``, in UTC unless a
    ``TZ=<IANA name>`` clause names the time zone of its wall clock.

    ``days`` is ``daily`` or a comma list of ``mon``..``sun`` (full names too) and
    ranges such as ``mon-fri`` (a range may wrap: ``fri-mon``). The window is
    ``[start, end)``; ``24:00`` may end one. A window that crosses midnight, such as
    ``fri 22:00-02:00``, belongs to the night of the day listed: it runs from Friday
    22:00 to Saturday 02:00. Several windows may be joined with ``;``, and one clause
    may be ``TZ=Europe/Berlin``: then every window follows that zone's clock,
    daylight saving time included (a team's night stays 22:00-07:00 all year, as in
    Grafana's mute timings and PagerDuty's schedules). Raises ``ValueError`` with
    what is wrong.
    """
    clauses = [c for c in text.split(";") if c.strip()]
    zones = [found["name"] for c in clauses if (found := _ZONE.fullmatch(c))]
    if len(zones) > 1:
        raise ValueError("bad schedule: more than one TZ= clause")
    windows = [c for c in clauses if not _ZONE.fullmatch(c)]
    if not windows:
        raise ValueError("bad schedule: it is empty" if not zones else "bad schedule: no window")
    try:
        zone = zone_named(zones[0]) if zones else UTC
    except ValueError as exc:
        raise ValueError(f"bad schedule: {exc}") from None
    return tuple(replace(_window(clause), zone=zone) for clause in windows)


def names_zone(text: str) -> bool:
    """The schedule has a ``TZ=`` clause (else it runs on UTC)."""
    return any(_ZONE.fullmatch(clause) for clause in text.split(";"))


def zone_named(name: str) -> tzinfo:
    """An IANA time zone by its name (``Europe/Berlin``), from the system's zone
    database or the ``tzdata`` package; ``ValueError`` naming it when there is none,
    with the name it means when only its case is wrong. Only names the database
    lists are looked up, so a name is never a path to read (``../``, a folder such as
    ``Europe``, a file that is no zone)."""
    if name in ("UTC", "Etc/UTC"):
        return UTC  # needs no database
    known = _zone_names().get(name.lower()) if len(name) <= _ZONE_NAME_MAX else None
    if known == name:
        try:
            return ZoneInfo(name)
        except (ValueError, OSError):
            pass  # listed but unreadable: refused as unknown below
    hint = f"; did you mean {known!r}?" if known and known != name else ""
    raise ValueError(
        f"unknown time zone {name[:_ZONE_NAME_MAX]!r}"
        f" (an IANA name such as Europe/Berlin or America/New_York){hint}"
    )


#: Files of the zone database that hold a zone but are no IANA name: the machine's own
#: zone (a clock that differs between hosts and containers), the POSIX default rules
#: and the placeholder zone of unconfigured systems.
_NOT_ZONE_NAMES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _zone_names() -> dict[str, str]:
    """The IANA zone names (links such as ``US/Eastern`` too) by their lower-case
    spelling, read once."""
    return {n.lower(): n for n in available_timezones() if n not in _NOT_ZONE_NAMES}


@functools.lru_cache(maxsize=256)
def _schedule(text: str) -> tuple[ScheduleWindow, ...] | None:
    """Parsed once per text; ``None`` when unreadable (then the silence never applies)."""
    try:
        return parse_schedule(text)
    except ValueError:
        return None


def _in_window(window: ScheduleWindow, weekday: int, minute: int) -> bool:
    if window.start < window.end:
        return weekday in window.days and window.start <= minute < window.end
    # Crosses midnight: the evening part is on a listed day, the early part the day after.
    evening = weekday in window.days and minute >= window.start
    early = (weekday - 1) % 7 in window.days and minute < window.end
    return evening or early


def in_schedule(windows: Iterable[ScheduleWindow], at: datetime) -> bool:
    """``at`` (naive means UTC) lies in one of the windows, read on each window's
    clock."""
    at = _utc(at)
    for window in windows:
        local = at.astimezone(window.zone)
        if _in_window(window, local.weekday(), local.hour * 60 + local.minute):
            return True
    return False


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so naive and aware values compare safely."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- silences


def silence_active(silence: Silence, at: datetime) -> bool:
    """Within ``[starts_at, ends_at)`` (each bound optional) and, when the silence has
    a ``schedule``, inside one of its recurring windows. An unreadable schedule makes
    the silence inactive rather than always on."""
    at = _utc(at)
    if silence.starts_at is not None and at < _utc(silence.starts_at):
        return False
    if silence.ends_at is not None and at >= _utc(silence.ends_at):
        return False
    if not silence.schedule.strip():
        return True
    windows = _schedule(silence.schedule)
    return windows is not None and in_schedule(windows, at)


def check_silence_matchers(matchers: Sequence[Matcher]) -> None:
    """Refuse (``ValueError``) silence matchers that all match the empty string, as
    Alertmanager does: a missing label equals ``""``, so ``{team=~".*"}`` or
    ``{env!="prod"}`` alone would silence every alert of the tenant, labelled or not."""
    if matchers and all(_matches_one(m, {}) for m in matchers):
        raise ValueError(
            "at least one matcher must not match the empty string: these match alerts "
            "without the label too, so the silence would cover every alert"
        )


def silencing(silences: Sequence[Silence], alert: CanonicalAlert, at: datetime) -> Silence | None:
    """The first silence active at ``at`` whose matchers match the alert. A silence
    without matchers would silence everything, so it never applies."""
    if not silences:  # most tenants, most of the time: no label view to build
        return None
    labels = label_view(alert)
    for silence in silences:
        active = bool(silence.matchers) and silence_active(silence, at)
        if active and matches_labels(silence.matchers, labels):
            return silence
    return None


# --------------------------------------------------------------------------- inhibition


def _same_alert(a: CanonicalAlert, b: CanonicalAlert) -> bool:
    return a is b or (bool(a.id) and a.id == b.id) or a.fingerprint == b.fingerprint


#: Firing sources one lookup examines per rule at most. A source that shares the
#: target's ``equal`` labels is usually the first one examined; the cap bounds the
#: rare lookup that skips many (resolved or two-sided sources), and past it the
#: target is not inhibited: a cap may only make rules suppress less.
MAX_INHIBITION_SCAN = 1000


class InhibitionIndex:
    """The firing alerts that may inhibit others, indexed per rule by the values of
    the rule's ``equal`` labels, so a lookup costs a few dictionary reads per rule
    instead of a scan of every firing alert (10,000 of them, with 200 rules, was two
    million matcher runs for each new alert).

    ``firing`` is read as it grows: alerts appended to it later are indexed on the
    next lookup. The status of an indexed alert is checked at lookup, so an alert
    that resolved since stops inhibiting.
    """

    def __init__(self, rules: Sequence[InhibitRule], firing: list[CanonicalAlert]) -> None:
        self.rules = tuple(rules)
        self.firing = firing
        self._indexed = 0
        self._buckets: list[dict[tuple[str, ...], list[tuple[CanonicalAlert, dict[str, str]]]]]
        self._buckets = [{} for _ in self.rules]

    def _catch_up(self) -> None:
        for source in self.firing[self._indexed :]:
            view = label_view(source)
            for rule, buckets in zip(self.rules, self._buckets, strict=True):
                if matches_labels(rule.source, view):
                    key = tuple(view.get(name, "") for name in rule.equal)
                    buckets.setdefault(key, []).append((source, view))
        self._indexed = len(self.firing)

    def find(self, target: CanonicalAlert) -> tuple[InhibitRule, CanonicalAlert] | None:
        """The first rule, and the firing source alert, that inhibit ``target``.

        A firing alert matching ``rule.source`` inhibits a target matching
        ``rule.target`` when every label in ``rule.equal`` has the same value on both.
        An alert never inhibits itself (same id or fingerprint). As in Alertmanager,
        when the target also matches the source side, sources that also match the
        target side are skipped, so two alerts cannot inhibit each other and both go
        unseen. Sources from another tenant or no longer firing are ignored.
        """
        self._catch_up()
        view = label_view(target)
        for rule, buckets in zip(self.rules, self._buckets, strict=True):
            if not matches_labels(rule.target, view):
                continue
            two_sided = matches_labels(rule.source, view)
            bucket = buckets.get(tuple(view.get(name, "") for name in rule.equal), ())
            for source, source_view in bucket[:MAX_INHIBITION_SCAN]:
                if (
                    source.status is AlertStatus.FIRING
                    and source.tenant_id == target.tenant_id
                    and not _same_alert(source, target)
                    and not (two_sided and matches_labels(rule.target, source_view))
                ):
                    return rule, source
        return None


def inhibitor(
    rules: Sequence[InhibitRule],
    target: CanonicalAlert,
    firing: Iterable[CanonicalAlert],
) -> tuple[InhibitRule, CanonicalAlert] | None:
    """:meth:`InhibitionIndex.find` for one target (the engine keeps an index per batch)."""
    return InhibitionIndex(rules, list(firing)).find(target)


# --------------------------------------------------------------------------- governance


@dataclass(frozen=True, slots=True)
class Governance:
    """What governance allowed a matching rule to do, and why.

    ``suppressed_by`` is set only in strict mode; ``would_suppress`` (audit mode) is
    what strict mode would have done, so it is never set for alerts strict mode would
    deliver anyway.
    """

    suppressed_by: str | None = None
    would_suppress: str | None = None
    reasons: tuple[str, ...] = ()


def _protection(alert: CanonicalAlert, settings: TenantSettings) -> str | None:
    """Why this alert may never be suppressed, if it may not. Service names compare
    case-insensitively: a spelling difference must not let a protected alert go."""
    if alert.severity is Severity.CRITICAL:
        return "critical alerts are never suppressed"
    protected = {s.casefold() for s in settings.never_suppress_services}
    if alert.service and alert.service.casefold() in protected:
        return f"service {alert.service} is on the never-suppress list"
    return None


def govern(
    alert: CanonicalAlert, rule_id: str | None, rule_kind: str, settings: TenantSettings
) -> Governance:
    """Decide what a matching human-made rule (``rule_kind`` such as ``silence`` or
    ``inhibition``) may do to delivery (design §6.10).

    ``audit`` mode (and any unknown mode) only logs "would suppress" and delivers;
    ``strict`` mode suppresses, except critical alerts and never-suppress services,
    which are delivered with the reason. No rule (``rule_id`` None): nothing to do.
    """
    if rule_id is None:
        return Governance()
    rule = f"{rule_kind} {rule_id}".strip()
    protection = _protection(alert, settings)
    if settings.governance_mode != "strict":
        if protection is not None:
            reason = f"audit mode: {rule} matches but would not suppress this: {protection}"
            return Governance(reasons=(reason,))
        reason = f"audit mode: {rule} would suppress this; delivered"
        return Governance(would_suppress=rule_id, reasons=(reason,))
    if protection is not None:
        reason = f"strict mode: {rule} matches, delivered anyway: {protection}"
        return Governance(reasons=(reason,))
    return Governance(suppressed_by=rule_id, reasons=(f"strict mode: suppressed by {rule}",))

"""Matchers, silences, inhibitions and governance (design §6.7, §6.10)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.correlation.model import InhibitRule, Matcher, Silence, TenantSettings
from dd0c_alert.correlation.rules import (
    Governance,
    InhibitionIndex,
    check_silence_matchers,
    compile_pattern,
    format_matchers,
    govern,
    inhibitor,
    label_view,
    matches,
    matches_labels,
    parse_matchers,
    parse_schedule,
    silence_active,
    silencing,
    stored_label_view,
)
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def alert(**overrides: object) -> CanonicalAlert:
    fields: dict[str, object] = {
        "tenant_id": "t1",
        "source": "alertmanager",
        "source_ref": "ref",
        "fingerprint": "fp-1",
        "status": AlertStatus.FIRING,
        "severity": Severity.HIGH,
        "title": "DB latency high",
        "started_at": T0,
        "received_at": T0,
        "service": "payments-db",
        "environment": "prod",
        "labels": {"alertname": "DBLatency", "cluster": "eu-1"},
        "id": "a1",
    }
    fields.update(overrides)
    return CanonicalAlert(**fields)  # type: ignore[arg-type]


def m(name: str, op: str, value: str) -> Matcher:
    return Matcher(name, op, value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- label_view


def test_label_view_adds_pseudo_labels() -> None:
    view = label_view(alert(resource="db-3"))
    assert view == {
        "alertname": "DBLatency",
        "cluster": "eu-1",
        "service": "payments-db",
        "severity": "high",
        "source": "alertmanager",
        "environment": "prod",
        "title": "DB latency high",
        "fingerprint": "fp-1",
        "resource": "db-3",
    }


def test_canonical_service_severity_source_win_over_real_labels() -> None:
    view = label_view(
        alert(labels={"severity": "P1", "service": "other", "source": "x", "environment": "stg"})
    )
    assert (view["severity"], view["service"], view["source"]) == (
        "high",
        "payments-db",
        "alertmanager",
    )
    assert view["environment"] == "stg"  # a real label wins over the soft pseudo-label


@pytest.mark.parametrize(
    "overrides",
    [
        {"resource": "db-3"},
        {"labels": {"severity": "P1", "environment": "stg", "team": ""}},
        {"environment": "", "resource": ""},
    ],
)
def test_a_stored_alert_has_the_label_view_of_the_canonical_one(
    overrides: dict[str, object],
) -> None:
    """A silence preview over stored alerts matches what the worker matched."""
    canonical = alert(**overrides)
    stored = {
        **{k: getattr(canonical, k) for k in ("service", "source", "title", "fingerprint")},
        "severity": canonical.severity.value,
        "environment": canonical.environment or None,  # a column may hold NULL
        "resource": canonical.resource or None,
        "labels": dict(canonical.labels),
    }
    assert stored_label_view(stored) == label_view(canonical)


def test_label_view_drops_empty_values() -> None:
    view = label_view(alert(environment="", labels={"team": ""}))
    assert "environment" not in view
    assert "team" not in view


# --------------------------------------------------------------------------- matches


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        (m("service", "=", "payments-db"), True),
        (m("service", "=", "payments"), False),
        (m("service", "!=", "payments-db"), False),
        (m("service", "!=", "web"), True),
        (m("service", "=~", "payments-.*"), True),
        (m("service", "=~", "db"), False),  # anchored both ends
        (m("service", "=~", "payments"), False),
        (m("service", "!~", "web|api"), True),
        (m("severity", "=~", "high|critical"), True),
        (m("cluster", "=", "eu-1"), True),
        (m("team", "=", ""), True),  # missing label equals ""
        (m("team", "!=", ""), False),
        (m("team", "=~", ".*"), True),
        (m("team", "=~", ".+"), False),
        (m("cluster", "=", ""), False),
    ],
)
def test_matcher_semantics(matcher: Matcher, expected: bool) -> None:
    assert matches([matcher], alert()) is expected


def test_all_matchers_must_match_and_none_matches_everything() -> None:
    a = alert()
    assert matches([m("service", "=", "payments-db"), m("cluster", "=", "eu-1")], a)
    assert not matches([m("service", "=", "payments-db"), m("cluster", "=", "us-1")], a)
    assert matches([], a)


@pytest.mark.parametrize("op", ["=~", "!~"])
def test_invalid_regex_never_raises_and_never_matches(op: str) -> None:
    assert matches([m("service", op, "(unclosed")], alert()) is False


# --------------------------------------------------------------------------- parse / format


def test_parse_braced_matchers() -> None:
    parsed = parse_matchers('{service="db", severity=~"warn|crit", env!="dev"}')
    assert parsed == (
        m("service", "=", "db"),
        m("severity", "=~", "warn|crit"),
        m("env", "!=", "dev"),
    )


def test_parse_without_braces_bare_words_spaces_and_trailing_comma() -> None:
    parsed = parse_matchers(" service = db ,severity=~warn|crit, env!~dev.* , ")
    assert parsed == (
        m("service", "=", "db"),
        m("severity", "=~", "warn|crit"),
        m("env", "!~", "dev.*"),
    )


def test_parse_escapes_and_quoted_names() -> None:
    parsed = parse_matchers(r'{title="say \"hi\"\n", "tag:k8s pod"="a", host=~"db\.prod"}')
    assert parsed == (
        m("title", "=", 'say "hi"\n'),
        m("tag:k8s pod", "=", "a"),
        m("host", "=~", r"db\.prod"),  # an unknown escape keeps its backslash
    )


@pytest.mark.parametrize("text", ["", "{}", "  { } "])
def test_parse_empty(text: str) -> None:
    assert parse_matchers(text) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{service="db"', "expected a comma or }"),
        ('{service="db"} x', "nothing after the closing }"),
        ('service "db"', "one of =, !=, =~, !~"),
        ('service="db', "closing double quote"),
        ("service=", 'write service="" to match an absent label'),
        ('service="a" env="b"', "expected a comma"),
        ('="x"', "a label name"),
        ('""="x"', "a label name"),
        ('severity=~"(warn"', "invalid regex for severity"),
        ('a="1",,b="2"', "a label name"),
        ("{", "a closing }"),
    ],
)
def test_parse_errors_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_matchers(text)


def test_format_matchers() -> None:
    text = format_matchers(
        [m("service", "=", "db"), m("title", "!~", 'a "b" \\c'), m("k8s pod", "=", "")]
    )
    assert text == r'{service="db", title!~"a \"b\" \\c", "k8s pod"=""}'


_names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.text(min_size=1)
)


def _valid_regex(text: str) -> bool:
    try:
        compile_pattern(text)
    except ValueError:
        return False
    return True


_plain_matcher = st.builds(m, _names, st.sampled_from(["=", "!="]), st.text())
_regex_matcher = st.builds(
    m,
    _names,
    st.sampled_from(["=~", "!~"]),
    st.one_of(st.text().map(re2.escape).filter(_valid_regex), st.text().filter(_valid_regex)),
)


@given(st.lists(st.one_of(_plain_matcher, _regex_matcher), max_size=5).map(tuple))
def test_format_then_parse_round_trips(matchers: tuple[Matcher, ...]) -> None:
    assert parse_matchers(format_matchers(matchers)) == matchers


# --------------------------------------------------------------------------- schedules


def test_parse_schedule_forms() -> None:
    (window,) = parse_schedule("sat,sun 02:00-04:00")
    assert (sorted(window.days), window.start, window.end) == ([5, 6], 120, 240)
    (window,) = parse_schedule("Mon-Fri 9:00 - 17:30")
    assert (sorted(window.days), window.start, window.end) == ([0, 1, 2, 3, 4], 540, 1050)
    (window,) = parse_schedule("fri-mon 22:00-02:00")  # ranges may wrap
    assert sorted(window.days) == [0, 4, 5, 6]
    (window,) = parse_schedule("daily 00:00-24:00")
    assert (len(window.days), window.start, window.end) == (7, 0, 0)
    assert len(parse_schedule("sat 02:00-04:00; sunday 03:00-05:00")) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("02:00-04:00", "expected"),
        ("sat 02:00", "expected"),
        ("someday 02:00-04:00", "unknown day 'someday'"),
        ("mon-xyz 02:00-04:00", "unknown day 'xyz'"),
        ("mon,,tue 02:00-04:00", "unknown day ''"),
        ("mon 25:00-26:00", "is not a time of day"),
        ("mon 10:60-11:00", "is not a time of day"),
        ("mon 24:00-02:00", "is not a time of day"),
        ("mon 02:00-02:00", "empty"),
        ("mon 2-4", "expected HH:MM"),
    ],
)
def test_parse_schedule_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_schedule(text)


def test_a_tz_clause_puts_every_window_on_that_zones_clock() -> None:
    night, weekend = parse_schedule("mon-fri 22:00-07:00; TZ=Europe/Berlin; sat,sun 00:00-24:00")
    assert night.zone == weekend.zone == ZoneInfo("Europe/Berlin")
    assert (night.start, night.end) == (22 * 60, 7 * 60)
    assert parse_schedule("tz = UTC; daily 02:00-03:00")[0].zone is UTC
    assert parse_schedule("daily 02:00-03:00")[0].zone is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("TZ=Mars/Olympus; daily 02:00-03:00", "unknown time zone 'Mars/Olympus'"),
        ("TZ=; daily 02:00-03:00", "unknown time zone ''"),
        ("TZ=/etc/passwd; daily 02:00-03:00", "unknown time zone"),
        ("TZ=../../../etc/passwd; daily 02:00-03:00", "unknown time zone"),
        ("TZ=" + "A/" * 40 + "; daily 02:00-03:00", "unknown time zone"),
        ("TZ=Europe/Berlin", "no window"),
        ("TZ=UTC; TZ=Europe/Berlin; daily 02:00-03:00", "more than one TZ= clause"),
        # Folders of the zone database, not zones: opening one raised IsADirectoryError.
        ("TZ=Europe; daily 02:00-03:00", "unknown time zone 'Europe'"),
        ("TZ=Etc; daily 02:00-03:00", "unknown time zone 'Etc'"),
        ("TZ=America/Argentina; daily 02:00-03:00", "unknown time zone"),
        # Files of the database that are zones but not IANA names: the machine's own
        # zone, the POSIX default rules, leap-second and POSIX copies, "Factory".
        ("TZ=localtime; daily 02:00-03:00", "unknown time zone 'localtime'"),
        ("TZ=posixrules; daily 02:00-03:00", "unknown time zone 'posixrules'"),
        ("TZ=right/UTC; daily 02:00-03:00", "unknown time zone 'right/UTC'"),
        ("TZ=posix/Europe/Berlin; daily 02:00-03:00", "unknown time zone"),
        ("TZ=Factory; daily 02:00-03:00", "unknown time zone 'Factory'"),
        ("TZ=zone.tab; daily 02:00-03:00", "unknown time zone 'zone.tab'"),
        ("TZ=tzdata.zi; daily 02:00-03:00", "unknown time zone 'tzdata.zi'"),
        ("TZ=leapseconds; daily 02:00-03:00", "unknown time zone 'leapseconds'"),
        ("TZ=Europe/Berl\u00efn; daily 02:00-03:00", "unknown time zone"),
        ("TZ=europe/berlin; daily 02:00-03:00", "did you mean 'Europe/Berlin'?"),
    ],
)
def test_bad_time_zones_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_schedule(text)


def test_zone_names_of_the_iana_database_and_its_links_are_read() -> None:
    for name in ("Europe/Berlin", "America/Argentina/Buenos_Aires", "US/Eastern", "EST5EDT"):
        assert parse_schedule(f"TZ={name}; daily 02:00-03:00")[0].zone == ZoneInfo(name)


def test_a_zoned_window_follows_daylight_saving_time() -> None:
    """22:00-07:00 in Berlin is 21:00-06:00 UTC in winter (CET) and 20:00-05:00 UTC in
    summer (CEST): the team's night, not a fixed UTC span that drifts by an hour."""
    silence = Silence("s1", (), schedule="TZ=Europe/Berlin; daily 22:00-07:00")
    for day in (datetime(2026, 1, 14, tzinfo=UTC), datetime(2026, 7, 14, tzinfo=UTC)):
        summer = day.month == 7
        evening = day.replace(hour=20 if summer else 21)
        morning = day.replace(hour=5 if summer else 6)
        assert silence_active(silence, evening)
        assert not silence_active(silence, evening - timedelta(minutes=1))
        assert silence_active(silence, morning - timedelta(minutes=1))
        assert not silence_active(silence, morning)


@settings(max_examples=30, deadline=None)
@given(
    day=st.sampled_from(["mon", "fri", "sun", "sat-mon", "daily"]),
    start=st.integers(0, 1439),
    length=st.integers(1, 1439),
    hours=st.integers(-12, 14),
    minute=st.integers(0, 10079),
)
def test_a_fixed_offset_zone_shifts_the_utc_schedule_by_its_offset(
    day: str, start: int, length: int, hours: int, minute: int
) -> None:
    """``Etc/GMT-2`` is UTC+2 (POSIX signs): a window on its clock is active at ``t``
    exactly when the same window in UTC is active at ``t + 2 h``."""
    end = (start + length) % 1440
    text = f"{day} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    name = "Etc/GMT" + ("" if hours == 0 else f"{-hours:+d}")
    at = T0 + timedelta(minutes=minute)
    zoned = Silence("s1", (), schedule=f"TZ={name}; {text}")
    in_utc = Silence("s2", (), schedule=text)
    assert silence_active(zoned, at) is silence_active(in_utc, at + timedelta(hours=hours))


def test_silence_bounds_are_half_open() -> None:
    silence = Silence(
        "s1", (m("service", "=", "x"),), starts_at=T0, ends_at=T0 + timedelta(hours=1)
    )
    assert not silence_active(silence, T0 - timedelta(seconds=1))
    assert silence_active(silence, T0)
    assert silence_active(silence, T0 + timedelta(minutes=59, seconds=59))
    assert not silence_active(silence, T0 + timedelta(hours=1))


def test_silence_without_bounds_or_schedule_is_always_active() -> None:
    assert silence_active(Silence("s1", ()), T0)


def test_naive_datetimes_are_utc() -> None:
    silence = Silence("s1", (), starts_at=T0.replace(tzinfo=None), schedule="mon 00:00-01:00")
    assert silence_active(silence, T0 + timedelta(minutes=30))
    assert silence_active(silence, (T0 + timedelta(minutes=30)).replace(tzinfo=None))


def test_schedule_crossing_midnight_belongs_to_the_listed_night() -> None:
    silence = Silence("s1", (), schedule="fri 22:00-02:00")
    friday = T0 + timedelta(days=4)
    assert not silence_active(silence, friday + timedelta(hours=1))  # Fri 01:00: Thursday's night
    assert silence_active(silence, friday + timedelta(hours=22))
    assert silence_active(silence, friday + timedelta(hours=25, minutes=59))  # Sat 01:59
    assert not silence_active(silence, friday + timedelta(hours=26))  # Sat 02:00


def test_schedule_uses_utc_for_aware_datetimes() -> None:
    silence = Silence("s1", (), schedule="mon 10:00-11:00")
    plus_two = timezone(timedelta(hours=2))
    assert silence_active(silence, datetime(2024, 1, 1, 12, 30, tzinfo=plus_two))  # 10:30 UTC
    assert not silence_active(silence, datetime(2024, 1, 1, 10, 30, tzinfo=plus_two))


def test_unreadable_schedule_makes_the_silence_inactive() -> None:
    assert not silence_active(Silence("s1", (), schedule="whenever"), T0)


_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@settings(max_examples=20, deadline=None)
@given(
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 1439),
    end=st.integers(0, 1440),
    second=st.integers(0, 59),
    bounds=st.tuples(st.integers(0, 10080), st.integers(0, 10080)) | st.none(),
)
def test_schedule_agrees_with_brute_force_over_a_week(
    days: set[int], start: int, end: int, second: int, bounds: tuple[int, int] | None
) -> None:
    if start == end:
        end = (end + 1) % 1441
    names = ",".join(_DAY_NAMES[d] for d in sorted(days))
    text = f"{names} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    if len(days) == 7 and second % 2:
        text = "daily" + text[text.index(" ") :]
    starts, ends = (None, None) if bounds is None else bounds
    silence = Silence(
        "s1",
        (),
        schedule=text,
        starts_at=None if starts is None else T0 + timedelta(minutes=starts),
        ends_at=None if ends is None else T0 + timedelta(minutes=ends),
    )
    length = (end - start) % 1440 or 1440
    expected = {(d * 1440 + start + k) % 10080 for d in days for k in range(length)}
    for minute in range(10080):
        in_bounds = bounds is None or bounds[0] <= minute < bounds[1]
        at = T0 + timedelta(minutes=minute, seconds=second)
        assert silence_active(silence, at) is (in_bounds and minute in expected), (text, minute)


# --------------------------------------------------------------------------- silencing


def test_silencing_returns_the_first_active_matching_silence() -> None:
    db = (m("service", "=", "payments-db"),)
    silences = [
        Silence("expired", db, ends_at=T0),
        Silence("other", (m("service", "=", "web"),)),
        Silence("everything", ()),  # no matchers: never applies
        Silence("s1", db, author="dana"),
        Silence("s2", db),
    ]
    found = silencing(silences, alert(), T0)
    assert found is not None and found.id == "s1"
    assert silencing(silences[:3], alert(), T0) is None


@pytest.mark.parametrize(
    "text",
    ['{team=~".*"}', '{env!="prod"}', '{team=""}', '{env!~"prod|staging", team=~"a|"}'],
)
def test_silence_matchers_that_all_match_an_absent_label_are_refused(text: str) -> None:
    """As Alertmanager: such a silence would cover every alert, labelled or not."""
    with pytest.raises(ValueError, match="must not match the empty string"):
        check_silence_matchers(parse_matchers(text))


@pytest.mark.parametrize("text", ['{team=~".+"}', '{env!="prod", team="db"}'])
def test_silence_matchers_with_one_that_needs_the_label_are_accepted(text: str) -> None:
    check_silence_matchers(parse_matchers(text))


# --------------------------------------------------------------------------- inhibition

NODE_DOWN = InhibitRule(
    "r1",
    source=(m("alertname", "=", "NodeDown"),),
    target=(m("severity", "!=", "critical"),),
    equal=("cluster",),
)


def test_firing_source_inhibits_target_with_equal_labels() -> None:
    source = alert(id="a0", fingerprint="fp-0", labels={"alertname": "NodeDown", "cluster": "eu-1"})
    target = alert()
    assert inhibitor([NODE_DOWN], target, [source]) == (NODE_DOWN, source)


def test_unequal_labels_do_not_inhibit() -> None:
    source = alert(id="a0", fingerprint="fp-0", labels={"alertname": "NodeDown", "cluster": "us-1"})
    assert inhibitor([NODE_DOWN], alert(), [source]) is None


def test_missing_equals_missing() -> None:
    source = alert(id="a0", fingerprint="fp-0", labels={"alertname": "NodeDown"})
    target = alert(labels={"alertname": "DBLatency"})
    assert inhibitor([NODE_DOWN], target, [source]) == (NODE_DOWN, source)
    assert inhibitor([NODE_DOWN], alert(), [source]) is None  # "eu-1" vs missing


def test_equal_may_name_pseudo_labels() -> None:
    rule = InhibitRule(
        "r2", source=(m("alertname", "=", "NodeDown"),), target=(), equal=("service",)
    )
    source = alert(id="a0", fingerprint="fp-0", labels={"alertname": "NodeDown"})
    assert inhibitor([rule], alert(), [source]) is not None
    assert inhibitor([rule], alert(service="web"), [source]) is None


def test_target_must_match() -> None:
    source = alert(id="a0", fingerprint="fp-0", labels={"alertname": "NodeDown", "cluster": "eu-1"})
    assert inhibitor([NODE_DOWN], alert(severity=Severity.CRITICAL), [source]) is None


def test_an_alert_never_inhibits_itself() -> None:
    rule = InhibitRule("r3", source=(m("service", "=", "payments-db"),), target=())
    target = alert()
    assert inhibitor([rule], target, [target]) is None
    assert inhibitor([rule], target, [alert(id="a9")]) is None  # same fingerprint
    assert inhibitor([rule], target, [alert(fingerprint="fp-9")]) is None  # same id


def test_resolved_and_foreign_sources_are_ignored() -> None:
    labels = {"alertname": "NodeDown", "cluster": "eu-1"}
    resolved = alert(id="a0", fingerprint="fp-0", labels=labels, status=AlertStatus.RESOLVED)
    foreign = alert(id="a0", fingerprint="fp-0", labels=labels, tenant_id="t2")
    assert inhibitor([NODE_DOWN], alert(), [resolved, foreign]) is None


def test_two_alerts_matching_both_sides_do_not_inhibit_each_other() -> None:
    rule = InhibitRule(
        "r4", source=(m("cluster", "=", "eu-1"),), target=(m("cluster", "=", "eu-1"),)
    )
    a, b = alert(), alert(id="a2", fingerprint="fp-2")
    assert inhibitor([rule], a, [b]) is None
    assert inhibitor([rule], b, [a]) is None


def test_first_rule_and_first_source_win() -> None:
    other = InhibitRule("r0", source=(m("alertname", "=", "Nope"),), target=())
    sources = [
        alert(id=f"a{i}", fingerprint=f"fp-{i}", labels={"alertname": "NodeDown"}) for i in (5, 6)
    ]
    found = inhibitor([other, NODE_DOWN], alert(labels={}), sources)
    assert found is not None and found[0].id == "r1" and found[1].id == "a5"


# --------------------------------------------------------------------------- governance

AUDIT = TenantSettings(governance_mode="audit", never_suppress_services=frozenset({"Payments"}))
STRICT = TenantSettings(governance_mode="strict", never_suppress_services=frozenset({"Payments"}))


def test_no_rule_means_nothing_to_govern() -> None:
    assert govern(alert(), None, "silence", STRICT) == Governance()


def test_audit_mode_only_logs_would_suppress() -> None:
    verdict = govern(alert(), "S1", "silence", AUDIT)
    assert verdict.suppressed_by is None
    assert verdict.would_suppress == "S1"
    assert verdict.reasons == ("audit mode: silence S1 would suppress this; delivered",)


def test_strict_mode_suppresses() -> None:
    verdict = govern(alert(), "S1", "silence", STRICT)
    assert verdict == Governance(
        suppressed_by="S1", reasons=("strict mode: suppressed by silence S1",)
    )


def test_strict_mode_never_suppresses_critical() -> None:
    verdict = govern(alert(severity=Severity.CRITICAL), "R1", "inhibition", STRICT)
    assert verdict.suppressed_by is None and verdict.would_suppress is None
    assert verdict.reasons == (
        "strict mode: inhibition R1 matches, delivered anyway: critical alerts are never "
        "suppressed",
    )


def test_strict_mode_never_suppresses_protected_services_case_insensitively() -> None:
    verdict = govern(alert(service="payments"), "S1", "silence", STRICT)
    assert verdict.suppressed_by is None
    assert "service payments is on the never-suppress list" in verdict.reasons[0]


def test_audit_mode_does_not_predict_suppression_of_protected_alerts() -> None:
    verdict = govern(alert(severity=Severity.CRITICAL), "S1", "silence", AUDIT)
    assert verdict.would_suppress is None
    assert verdict.reasons[0].startswith("audit mode: silence S1 matches but would not")


def test_unknown_mode_behaves_like_audit() -> None:
    odd = TenantSettings(governance_mode="enforce")  # type: ignore[arg-type]
    verdict = govern(alert(), "S1", "silence", odd)
    assert verdict.suppressed_by is None and verdict.would_suppress == "S1"


_SERVICES = ["payments", "Payments", "web", "api", ""]


@given(
    severity=st.sampled_from(Severity),
    service=st.sampled_from(_SERVICES),
    mode=st.sampled_from(["audit", "strict"]),
    rule_id=st.none() | st.text(min_size=1, max_size=5),
    kind=st.sampled_from(["silence", "inhibition", ""]),
    protected=st.frozensets(st.sampled_from(_SERVICES)),
)
def test_govern_never_suppresses_critical_or_protected(
    severity: Severity,
    service: str,
    mode: str,
    rule_id: str | None,
    kind: str,
    protected: frozenset[str],
) -> None:
    config = TenantSettings(governance_mode=mode, never_suppress_services=protected)  # type: ignore[arg-type]
    verdict = govern(alert(severity=severity, service=service), rule_id, kind, config)
    is_protected = severity is Severity.CRITICAL or (
        bool(service) and service.casefold() in {s.casefold() for s in protected}
    )
    if is_protected or rule_id is None:
        assert verdict.suppressed_by is None and verdict.would_suppress is None
    elif mode == "strict":
        assert verdict.suppressed_by == rule_id and verdict.would_suppress is None
    else:
        assert verdict.suppressed_by is None and verdict.would_suppress == rule_id
    assert len(verdict.reasons) == (0 if rule_id is None else 1)


# --------------------------------------------------------------------------- RE2 and bounds


def test_regexes_have_re2_semantics_and_linear_time() -> None:
    # Catastrophic under backtracking (minutes for 36 characters), instant under RE2.
    rule = parse_matchers('{service=~"(a+)+$"}')
    assert not matches_labels(rule, {"service": "a" * 100_000 + "!"})
    assert matches_labels(rule, {"service": "aaa"})


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(?=a)a", "RE2 syntax"),
        ("(a)\\1", "RE2 syntax"),
        ("a" * 1025, "the limit is 1024"),
        ("\ud800", "lone surrogate"),
        ("(((a{100}){100}){100})", "RE2 syntax"),  # an automaton over the memory cap
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_the_reason(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_pattern(pattern)
    with pytest.raises(ValueError, match="invalid regex for service"):
        parse_matchers(f'{{service=~"{pattern}"}}')


def test_a_stored_rule_re2_refuses_still_loads_and_matches_nothing() -> None:
    """Saved before matching used RE2: the tenant's configuration must stay readable,
    and the rule must suppress nothing (never more than it did)."""
    stored = parse_matchers('{service=~"(?=db)db.*"}', stored=True)
    assert not matches_labels(stored, {"service": "db-1"})
    negated = parse_matchers('{service!~"(?=db)db.*"}', stored=True)
    assert not matches_labels(negated, {"service": "web"})


_labels = st.dictionaries(
    st.sampled_from(["alertname", "cluster", "team"]), st.sampled_from(["a", "b", ""]), max_size=3
)


def _brute_force(
    rules: list[InhibitRule], target: CanonicalAlert, firing: list[CanonicalAlert]
) -> tuple[InhibitRule, CanonicalAlert] | None:
    """The definition, one pair at a time: what the index must agree with."""
    view = label_view(target)
    for rule in rules:
        if not matches_labels(rule.target, view):
            continue
        two_sided = matches_labels(rule.source, view)
        for source in firing:
            sv = label_view(source)
            if (
                source.status is AlertStatus.FIRING
                and source.tenant_id == target.tenant_id
                and source.fingerprint != target.fingerprint
                and source.id != target.id
                and matches_labels(rule.source, sv)
                and all(sv.get(n, "") == view.get(n, "") for n in rule.equal)
                and not (two_sided and matches_labels(rule.target, sv))
            ):
                return rule, source
    return None


@settings(max_examples=200, deadline=None)
@given(
    rule_specs=st.lists(
        st.tuples(_labels, _labels, st.lists(st.sampled_from(["cluster", "team"]), max_size=2)),
        min_size=1,
        max_size=3,
    ),
    firing_labels=st.lists(st.tuples(_labels, st.booleans()), max_size=8),
    target_labels=_labels,
)
def test_the_inhibition_index_agrees_with_the_definition(
    rule_specs: list[tuple[dict[str, str], dict[str, str], list[str]]],
    firing_labels: list[tuple[dict[str, str], bool]],
    target_labels: dict[str, str],
) -> None:
    rules = [
        InhibitRule(
            f"r{n}",
            source=tuple(m(k, "=", v) for k, v in src.items()),
            target=tuple(m(k, "=", v) for k, v in tgt.items()),
            equal=tuple(equal),
        )
        for n, (src, tgt, equal) in enumerate(rule_specs)
    ]
    firing = [
        alert(
            id=f"s{n}",
            fingerprint=f"fp-s{n}",
            labels=labels,
            status=AlertStatus.FIRING if live else AlertStatus.RESOLVED,
        )
        for n, (labels, live) in enumerate(firing_labels)
    ]
    target = alert(labels=target_labels)
    index = InhibitionIndex(rules, firing[: len(firing) // 2])
    index.find(target)  # indexed in part, then the list grows: the index catches up
    index.firing.extend(firing[len(firing) // 2 :])
    assert index.find(target) == _brute_force(rules, target, firing)

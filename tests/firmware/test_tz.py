# lamp.tz (POSIX TZ strings) and the clock's local-time helpers. The full comparison with
# zoneinfo for 2020-2040 is tests/test_tz_vectors.py; these pin the rules one by one.
from fw import raises
from lamp import clock, tz

LONDON = "GMT0BST,M3.5.0/1,M10.5.0"
ROME = "CET-1CEST,M3.5.0,M10.5.0/3"
SYDNEY = "AEST-10AEDT,M10.1.0,M4.1.0/3"
H = 3600


def utc(y, m, d, hh=0, mm=0, ss=0):
    return clock.days_from_civil(y, m, d) * 86400 + hh * H + mm * 60 + ss


def test_eu_zones_parse_to_their_offsets_and_names():
    cases = (
        (LONDON, 0, H, "GMT", "BST"),
        ("WET0WEST,M3.5.0/1,M10.5.0", 0, H, "WET", "WEST"),
        (ROME, H, 2 * H, "CET", "CEST"),
        ("EET-2EEST,M3.5.0/3,M10.5.0/4", 2 * H, 3 * H, "EET", "EEST"),
    )
    for text, std, dst, sname, dname in cases:
        z = tz.parse(text)
        winter, summer = utc(2026, 1, 15, 12), utc(2026, 7, 15, 12)
        assert (z.offset(winter), z.abbrev(winter)) == (std, sname), text
        assert (z.offset(summer), z.abbrev(summer)) == (dst, dname), text


def test_eu_transitions_are_the_last_sundays_at_0100_utc():
    # EU Directive 2000/84/EC: 01:00 UTC on the last Sunday of March and of October,
    # whatever the zone; the TZ strings express it in local time.
    expected = (utc(2026, 3, 29, 1), utc(2026, 10, 25, 1))
    for text in (LONDON, ROME, "EET-2EEST,M3.5.0/3,M10.5.0/4", "WET0WEST,M3.5.0/1,M10.5.0"):
        assert tz.parse(text).transitions(2026) == expected, text


def test_zone_without_dst_has_no_transitions():
    for text, off, name in (
        ("UTC0", 0, "UTC"),
        ("<+03>-3", 3 * H, "+03"),
        ("<-0330>3:30", -12600, "-0330"),
    ):
        z = tz.parse(text)
        assert z.transitions(2026) is None
        assert z.offset(utc(2026, 7, 1)) == off and z.abbrev(0) == name
        assert z.utc(utc(2026, 7, 1) + off) == utc(2026, 7, 1)


def test_spring_gap_maps_forward_by_the_gap():
    z = tz.parse(LONDON)
    # 01:30 on 2026-03-29 never shows on a London clock; read as GMT it is 02:30 BST.
    assert z.utc(utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 1, 30)
    assert z.utc(utc(2026, 3, 29, 1, 30), later=True) == utc(2026, 3, 29, 1, 30)
    assert z.local(z.utc(utc(2026, 3, 29, 1, 30))) == utc(2026, 3, 29, 2, 30)
    assert z.utc(utc(2026, 3, 29, 2, 0)) == utc(2026, 3, 29, 1, 0)  # first valid reading


def test_autumn_overlap_gives_the_earlier_instant_unless_later():
    z = tz.parse(ROME)
    wall = utc(2026, 10, 25, 2, 30)  # shown twice: 00:30 UTC (CEST) and 01:30 UTC (CET)
    assert z.utc(wall) == utc(2026, 10, 25, 0, 30)
    assert z.utc(wall, later=True) == utc(2026, 10, 25, 1, 30)
    assert z.abbrev(z.utc(wall)) == "CEST" and z.abbrev(z.utc(wall, True)) == "CET"


def test_transition_instants_are_exact_to_the_second():
    z = tz.parse(ROME)
    start, end = z.transitions(2026)
    assert (z.offset(start - 1), z.offset(start)) == (H, 2 * H)
    assert (z.offset(end - 1), z.offset(end)) == (2 * H, H)


def test_southern_hemisphere_dst_spans_new_year():
    z = tz.parse(SYDNEY)
    start, end = z.transitions(2026)
    assert start == utc(2026, 10, 3, 16)  # Sun 4 Oct 02:00 AEST
    assert end == utc(2026, 4, 4, 16)  # Sun 5 Apr 03:00 AEDT
    assert z.abbrev(utc(2026, 1, 10)) == "AEDT" and z.offset(utc(2026, 12, 31, 23)) == 11 * H
    assert z.abbrev(utc(2026, 7, 1)) == "AEST"


def test_negative_dst_dublin():
    # Irish Standard Time is the summer time; GMT is the "dst" of the winter.
    z = tz.parse("IST-1GMT0,M10.5.0,M3.5.0/1")
    assert (z.abbrev(utc(2026, 1, 15)), z.offset(utc(2026, 1, 15))) == ("GMT", 0)
    assert (z.abbrev(utc(2026, 7, 15)), z.offset(utc(2026, 7, 15))) == ("IST", H)


def test_julian_and_zero_based_day_rules():
    # Jn never counts Feb 29, n does: J60 is 1 March, 59 is 29 February in 2028.
    z = tz.parse("AAA0BBB,J60/0,300/0")
    assert z.transitions(2028) == (utc(2028, 3, 1), utc(2028, 10, 27) - H)
    z = tz.parse("AAA0BBB,59/0,J365/0")
    assert z.transitions(2028)[0] == utc(2028, 2, 29)


def test_rule_times_may_be_negative_or_beyond_24h():
    # RFC 8536 sec. 3.3.1; America/Nuuk uses "/-1". "0/0,J365/25": DST all year.
    z = tz.parse("<-02>2<-01>,M3.5.0/-1,M10.5.0/0")
    assert z.transitions(2026)[0] == utc(2026, 3, 28, 23) + 2 * H
    z = tz.parse("EST5EDT,0/0,J365/25")
    for t in (utc(2026, 1, 1, 6), utc(2026, 6, 1), utc(2026, 12, 31, 23)):
        assert z.abbrev(t) == "EDT"


def test_explicit_dst_offset():
    z = tz.parse("NZST-12NZDT-13,M9.5.0,M4.1.0/3")
    assert z.offset(utc(2026, 1, 1)) == 13 * H


def test_parse_errors_quote_the_string_and_name_the_part():
    cases = (
        ("", "empty"),
        ("C1", "std name"),
        ("CET", "std offset missing"),
        ("CETx", "std offset"),
        ("CET-25", "std offset: out of range"),
        ("CET-1:75", "std offset: out of range"),
        ("<+3>-3", "std name"),
        ("<+03-3", "no closing"),
        ("CET-1CE", "dst name"),
        ("CET-1CEST", "dst rules missing"),
        ("CET-1CEST,M3.5.0", "dst end rule missing"),
        ("CET-1CEST,M13.5.0,M10.5.0/3", "dst start rule month"),
        ("CET-1CEST,M3.6.0,M10.5.0/3", "dst start rule week"),
        ("CET-1CEST,M3.5.7,M10.5.0/3", "dst start rule weekday"),
        ("CET-1CEST,M3.5.0,M10.5/3", "dst end rule: expected Mm.w.d"),
        ("CET-1CEST,M3.5.0,M10.5.0/200", "dst end rule time: out of range"),
        ("CET-1CEST,M3.5.0,J0", "dst end rule Julian day"),
        ("CET-1CEST,M3.5.0,M10.5.0/3,", "unexpected text"),
    )
    for text, part in cases:
        msg = str(raises(ValueError, tz.parse, text))
        assert ("%r" % text) in msg and part in msg, (text, msg)


def test_civil_and_days_from_civil_are_inverse_for_any_epoch_value():
    assert clock.civil(0) == (1970, 1, 1, 0, 0, 0, 3, 1)
    assert clock.civil(1795600000) == (2026, 11, 25, 9, 46, 40, 2, 329)
    assert clock.civil(-1) == (1969, 12, 31, 23, 59, 59, 2, 365)
    assert clock.civil(utc(2028, 2, 29, 12))[:3] == (2028, 2, 29)
    assert clock.civil(utc(2100, 3, 1))[:3] == (2100, 3, 1)  # 2100 is not a leap year
    assert clock.days_from_civil(2000, 3, 1) - clock.days_from_civil(2000, 2, 28) == 2
    for days in range(-800, 80000, 97):
        y, m, d = clock.civil(days * 86400)[:3]
        assert clock.days_from_civil(y, m, d) == days


def test_clock_local_time_follows_the_zone():
    clock.setup(start=utc(2026, 7, 1, 12), manual=True)
    clock.set_tz(None)
    assert clock.local() == clock.now() and clock.local_iso().endswith("+00:00")
    clock.set_tz(tz.parse(ROME))
    assert clock.local() == utc(2026, 7, 1, 14)
    assert clock.local_iso() == "2026-07-01T14:00:00+02:00"
    assert clock.local_iso(utc(2026, 11, 25, 16, 4, 5)) == "2026-11-25T17:04:05+01:00"
    clock.set_tz(tz.parse("<-0330>3:30"))
    assert clock.local_iso(0) == "1969-12-31T20:30:00-03:30"
    clock.set_tz(None)

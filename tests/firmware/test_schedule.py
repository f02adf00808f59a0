# Schedules: validation names the offending path; evaluation is a state for "now".
from fw import raises
from lamp import clock, tz
from lamp.schedule import Plan, ScheduleError, parse

LONDON = "GMT0BST,M3.5.0/1,M10.5.0"
GREENWICH = (51.4826, 0.0077)
DAY = 86400


def _sched(**over):
    s = {
        "version": 1,
        "id": "t",
        "profiles": {
            "weeknight": [
                {"at": "sunset", "offset": -10, "level": 100},
                {"at": "22:30", "level": 70},
                {"at": "00:30", "level": 40},
                {"at": "05:30", "level": 70},
                {"at": "sunrise", "offset": 10, "level": 0},
            ],
            "weekend": [{"at": "sunset", "level": 100}, {"at": "sunrise", "level": 0}],
            "nye": [{"at": "dusk", "level": 100}, {"at": "dawn", "level": 0}],
        },
        "calendar": [
            {"dates": ["--12-31"], "profile": "nye"},
            {"weekdays": ["fri", "sat"], "profile": "weekend"},
            {"profile": "weeknight"},
        ],
    }
    s.update(over)
    return s


def _plan(obj=None, posix=LONDON, where=GREENWICH):
    return Plan(parse(obj or _sched()), tz.parse(posix), where[0], where[1])


def _day(y, m, d):
    return clock.days_from_civil(y, m, d)


def _local(plan, y, m, d, hh, mm):
    return plan.zone.utc(_day(y, m, d) * DAY + hh * 3600 + mm * 60)


def _err(obj):
    return str(raises(ScheduleError, parse, obj))


def test_invalid_schedules_name_the_offending_path():
    s = _sched()
    s["profiles"]["weeknight"][1]["level"] = 120
    assert _err(s) == "schedule: profiles.weeknight[1].level: 120 outside 0..100"
    s = _sched()
    s["profiles"]["weeknight"][0]["offset"] = -400
    assert _err(s) == "schedule: profiles.weeknight[0].offset: -400 outside -360..360"
    s = _sched()
    s["profiles"]["weeknight"][2]["colour"] = "red"
    assert _err(s) == "schedule: profiles.weeknight[2].colour: unknown key"
    s = _sched()
    s["profiles"]["weekend"] = []
    assert _err(s) == "schedule: profiles.weekend: a profile needs at least one step"
    s = _sched()
    s["profiles"]["weeknight"][1]["at"] = "25:00"
    assert "profiles.weeknight[1].at: expected HH:MM" in _err(s)
    s = _sched()
    s["profiles"]["weeknight"][1]["offset"] = 5
    assert "profiles.weeknight[1].offset: only sun-relative steps" in _err(s)


def test_invalid_calendars_name_the_offending_path():
    s = _sched()
    s["calendar"][0]["dates"] = ["--13-01"]
    assert "calendar[0].dates[0]: expected YYYY-MM-DD or --MM-DD" in _err(s)
    s = _sched()
    s["calendar"][1]["profile"] = "holiday"
    assert _err(s) == "schedule: calendar[1].profile: no profile named 'holiday'"
    s = _sched()
    s["calendar"][1]["weekdays"] = ["fri", "caturday"]
    assert "calendar[1].weekdays[1]: expected one of" in _err(s)
    s = _sched()
    s["calendar"] = s["calendar"][:2]
    assert "calendar[1]: the last entry must be the default" in _err(s)
    s = _sched()
    s["calendar"][0] = {"from": "2026-12-24", "profile": "nye"}
    assert "calendar[0]: a date range needs both from and to" in _err(s)
    assert "2026-02-29 is not a date" in _err(
        _sched(calendar=[{"dates": ["2026-02-29"], "profile": "nye"}, {"profile": "weeknight"}])
    )
    assert _err(_sched(colour=1)) == "schedule: colour: unknown key"
    assert _err(_sched(version=2)) == "schedule: version: expected 1, got 2"
    s = _sched()
    s["photocell"] = {"on_lux": 50, "off_lux": 20, "level": 100}
    assert "photocell.off_lux: must be above on_lux" in _err(s)


def test_level_is_a_state_computed_for_any_instant():
    # Wednesday 25 November 2026 in Greenwich: sunset ~15:53 GMT, sunrise ~07:43 GMT.
    expect = [
        ((2026, 11, 25, 12, 0), 0),
        ((2026, 11, 25, 15, 30), 0),
        ((2026, 11, 25, 15, 50), 100),
        ((2026, 11, 25, 22, 29), 100),
        ((2026, 11, 25, 22, 30), 70),
        ((2026, 11, 26, 0, 29), 70),
        ((2026, 11, 26, 0, 30), 40),
        ((2026, 11, 26, 5, 30), 70),
        ((2026, 11, 26, 7, 40), 70),
        ((2026, 11, 26, 8, 0), 0),
    ]
    for (y, m, d, hh, mm), level in expect:
        plan = _plan()  # a fresh plan each time: no history, as after a reboot
        got = plan.level_at(_local(plan, y, m, d, hh, mm))[0]
        assert got == level, ((y, m, d, hh, mm), got, level)


def test_calendar_picks_profiles_by_date_and_weekday():
    plan = _plan()
    assert plan.night(_day(2026, 11, 25))[0] == "weeknight"  # Wednesday
    assert plan.night(_day(2026, 11, 27))[0] == "weekend"  # Friday
    assert plan.night(_day(2026, 12, 31))[0] == "nye"  # a Thursday, special date first
    assert plan.night(_day(2027, 12, 31))[0] == "nye"  # yearless: every year


def test_yearless_range_wraps_the_year_end():
    s = _sched(
        calendar=[
            {"from": "--12-20", "to": "--01-06", "profile": "weekend"},
            {"profile": "weeknight"},
        ]
    )
    plan = _plan(s)
    assert plan.night(_day(2026, 12, 19))[0] == "weeknight"
    assert plan.night(_day(2026, 12, 20))[0] == "weekend"
    assert plan.night(_day(2027, 1, 6))[0] == "weekend"
    assert plan.night(_day(2027, 1, 7))[0] == "weeknight"


def test_short_night_in_spring_keeps_every_step():
    # 29 March 2026, 01:00 UTC: London goes from GMT to BST; the night is 23 hours long.
    plan = _plan()
    day = _day(2026, 3, 28)  # a Saturday night -> weekend profile; use a weekday schedule
    plan = _plan(_sched(calendar=[{"profile": "weeknight"}]))
    noon0 = plan.zone.utc(day * DAY + 12 * 3600)
    noon1 = plan.zone.utc((day + 1) * DAY + 12 * 3600)
    assert noon1 - noon0 == 23 * 3600
    start, changes = plan.transitions(day)
    assert start == 0 and [lvl for _t, lvl in changes] == [100, 70, 40, 70, 0]
    # 00:30 is still GMT (= 00:30 UTC); 05:30 is BST (= 04:30 UTC).
    assert changes[2][0] == (day + 1) * DAY + 30 * 60
    assert changes[3][0] == (day + 1) * DAY + 4 * 3600 + 30 * 60


def test_long_night_in_autumn_keeps_every_step_once():
    # 25 October 2026, 01:00 UTC: BST back to GMT; 01:00-02:00 local happens twice.
    s = _sched(calendar=[{"profile": "p"}])
    s["profiles"]["p"] = [
        {"at": "sunset", "level": 100},
        {"at": "01:30", "level": 50},
        {"at": "sunrise", "level": 0},
    ]
    plan = _plan(s)
    day = _day(2026, 10, 24)
    noon0 = plan.zone.utc(day * DAY + 12 * 3600)
    noon1 = plan.zone.utc((day + 1) * DAY + 12 * 3600)
    assert noon1 - noon0 == 25 * 3600
    start, changes = plan.transitions(day)
    assert [lvl for _t, lvl in changes] == [100, 50, 0]
    assert changes[1][0] == (day + 1) * DAY + 30 * 60  # the first 01:30 (BST)


def test_next_change_walks_every_step():
    plan = _plan()
    t = _local(plan, 2026, 11, 25, 12, 0)
    seen = []
    for _ in range(5):
        t = plan.next_change(t)
        seen.append(plan.level_at(t)[0])
    assert seen == [100, 70, 40, 70, 0]


def test_polar_night_and_day_give_sensible_levels():
    tromso = (69.65, 18.96)
    cet = "CET-1CEST,M3.5.0,M10.5.0/3"
    s = _sched(calendar=[{"profile": "weekend"}])  # sunset 100 .. sunrise 0
    plan = _plan(s, cet, tromso)
    # Mid-December: the sun never rises; the street is lit all day.
    assert plan.level_at(_local(plan, 2026, 12, 15, 13, 0))[0] == 100
    assert plan.level_at(_local(plan, 2026, 12, 16, 9, 0))[0] == 100
    # Midsummer: the sun never sets; the lamp stays off.
    plan = _plan(s, cet, tromso)
    assert plan.level_at(_local(plan, 2026, 6, 21, 23, 30))[0] == 0
    assert plan.level_at(_local(plan, 2026, 6, 22, 1, 0))[0] == 0

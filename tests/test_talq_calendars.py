"""TALQ calendars and control programs to and from Lanterna schedules (lanterna.talq.calendars).

The nights a translated calendar gives are computed with the node's own code (the
preview and Plan of lanterna.fleet.schedules / lamp.schedule) and checked against
zoneinfo and astral, not against this module's idea of them.
"""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from astral import LocationInfo
from astral.sun import sun

from lamp import schedule as fwsched
from lanterna.fleet import schedules
from lanterna.talq import calendars as tc
from lanterna.tzinfo import zone as make_zone

REPO = Path(__file__).resolve().parents[1]
GREENWICH = (51.4826, 0.0077, "Europe/London")
LONDON = ZoneInfo("Europe/London")


def _cmd(level: int, **extra) -> dict:
    return {"state": {"name": "LevelState", "value": level}, **extra}


def _fixed(at: str, level: int) -> dict:
    return {"startTime": at, "command": _cmd(level)}


def _astro(event: str, offset: int, level: int, operation: str = "Set") -> dict:
    return {
        "offset": offset,
        "solarEventType": event,
        "operation": operation,
        "command": _cmd(level),
    }


def _prog(pid: str, fixed: list[dict], astro: list[dict] | None = None, **extra) -> dict:
    p = {"type": "ControlProgramOne", "id": pid, "ownerCMS": "cms-1", "activePeriods": []}
    p["fixedTimeControls"] = fixed
    if astro is not None:
        p["astroClockTimeControls"] = astro
    return p | extra


WEEKNIGHT = _prog(
    "weeknight",
    [_fixed("22:30:00", 60), _fixed("01:00:00", 30), _fixed("06:30:00", 80), _fixed("08:30:00", 0)],
    [_astro("sunset", -30, 100)],
)
WEEKEND = _prog(
    "weekend", [_fixed("00:30:00", 50), _fixed("08:30:00", 0)], [_astro("sunset", -30, 100)]
)
NEW_YEAR = _prog("new-year", [_fixed("09:00:00", 0)], [_astro("sunset", -30, 100)])
PROGRAMS = {p["id"]: p for p in (WEEKNIGHT, WEEKEND, NEW_YEAR)}
CALENDAR = {
    "id": "greenwich",
    "ownerCMS": "cms-1",
    "rules": [
        {"program": "new-year", "condition": {"type": "ccDate", "dates": [{"start": "--12-31"}]}},
        {"program": "weekend", "condition": {"type": "ccDay", "days": [{"start": 5, "end": 6}]}},
    ],
    "defaultProgram": "weeknight",
}


def _day(iso: str) -> int:
    return (date.fromisoformat(iso) - date(1970, 1, 1)).days


def _profile_on(sched: dict, iso: str) -> str:
    return fwsched.parse(sched).profile_for(_day(iso))


def _local(d: date, hhmm: str, next_morning: bool) -> datetime:
    day = d + timedelta(days=1) if next_morning else d
    return datetime.combine(day, time.fromisoformat(hhmm), LONDON)


# -- a translated calendar on three nights at Greenwich ---------------------------------


def test_translated_calendar_gives_the_expected_nights_at_greenwich():
    sched = tc.to_schedule(CALENDAR, PROGRAMS)
    assert sched["id"] == "talq-greenwich"
    assert sched["calendar"] == [
        {"dates": ["--12-31"], "profile": "new-year"},
        {"weekdays": ["fri", "sat"], "profile": "weekend"},
        {"profile": "weeknight"},
    ]
    assert tc.switch_points(WEEKNIGHT)[-1] == ("sunset", -30, 100)
    assert tc.switch_points(WEEKNIGHT)[0] == ("22:30", None, 60)
    lat, lon, tzname = GREENWICH
    place = LocationInfo("Greenwich", "UK", tzname, lat, lon).observer
    expected = {  # (date, weekday): (profile, fixed steps after sunset - 30)
        "2026-12-01": ("weeknight", [("22:30", 60), ("01:00", 30), ("06:30", 80), ("08:30", 0)]),
        "2026-12-04": ("weekend", [("00:30", 50), ("08:30", 0)]),
        "2026-12-31": ("new-year", [("09:00", 0)]),
    }
    assert [date.fromisoformat(d).strftime("%a") for d in expected] == ["Tue", "Fri", "Thu"]
    compiled = fwsched.parse(sched)
    for iso, (profile, fixed) in expected.items():
        night = date.fromisoformat(iso)
        p = schedules.preview(compiled, night, lat, lon, tzname)
        assert p.profile == profile
        assert p.start_level == 0  # every night ends dark, so the next starts dark
        got = [(datetime.fromisoformat(t["time"]), t["level"]) for t in p.transitions]
        sunset = sun(place, night, tzinfo=LONDON)["sunset"] - timedelta(minutes=30)
        assert got[0][1] == 100
        assert abs((got[0][0] - sunset).total_seconds()) <= 60, (iso, got[0][0], sunset)
        want = [(_local(night, at, at < "12:00"), lvl) for at, lvl in fixed]
        assert got[1:] == want, iso


# -- refusals -----------------------------------------------------------------------------


def _refused(cal: dict, programs: dict, where: str) -> tc.Untranslatable:
    before = copy.deepcopy((cal, programs))
    with pytest.raises(tc.Untranslatable) as ei:
        tc.to_schedule(cal, programs)
    assert ei.value.where == where, str(ei.value)
    assert str(ei.value).startswith(where + ": ")
    assert (cal, programs) == before  # nothing changed
    return ei.value


def _one(prog: dict) -> tuple[dict, dict]:
    return {"id": "c", "ownerCMS": "cms-1", "defaultProgram": prog["id"]}, {prog["id"]: prog}


FIX = [_fixed("22:00:00", 50)]
ABS = "AbsoluteActivePeriod"


def _period(start: str, end: str) -> dict:
    return {"name": ABS, "startTime": start, "endTime": end}


def _at(level: Any, **extra) -> list[dict]:
    return [{"startTime": "23:00:00", "command": _cmd(level, **extra)}]


BOOL = {"startTime": "22:00:00", "command": {"state": {"name": "BooleanState", "value": True}}}
RAMPED = {**_astro("sunset", 0, 100), "command": _cmd(100, rampFromLevelTime=5.0)}
F0, A0 = "fixedTimeControls[0]", "astroClockTimeControls[0]"


@pytest.mark.parametrize(
    ("prog", "where"),
    [
        (_prog("p", [_fixed("22:30:15", 50)]), F0 + ".startTime"),
        (
            _prog("p", [], [_astro("sunset", 0, 100), _astro("sunrise", 0, 0, "Max")]),
            "astroClockTimeControls[1].operation",
        ),
        (_prog("p", [], [_astro("sunset", 361, 100)]), A0 + ".offset"),
        (_prog("p", [], [_astro("sunrise", -400, 0)]), A0 + ".offset"),
        (_prog("p", [BOOL]), F0 + ".command.state.name"),
        (_prog("p", FIX + _at(101)), "fixedTimeControls[1].command.state.value"),
        (_prog("p", _at(50.5)), F0 + ".command.state.value"),
        (_prog("p", _at(50, rampToLevelTime=30)), F0 + ".command.rampToLevelTime"),
        (_prog("p", [], [RAMPED]), A0 + ".command.rampFromLevelTime"),
        (_prog("p", FIX, activePeriods=[_period("18:00:00", "06:00:00")]), "activePeriods[0]"),
        (_prog("p", FIX, activePeriods=[{"name": "AstroClockActivePeriod"}]), "activePeriods[0]"),
        (_prog("p", FIX, activePeriods=[_period("00:00:00", "00:00:00")] * 2), "activePeriods"),
        (_prog("p", FIX, dynamicControls=[{"triggerSensor": "x"}]), "dynamicControls"),
        ({**_prog("p", FIX), "type": "ControlProgramTwo"}, "type"),
        (_prog("p", [], []), "fixedTimeControls"),
        (_prog("p", [_fixed("22:00", 50)]), F0 + ".startTime"),
        (_prog("p", FIX + [_fixed("22:00:00", 60)]), "fixedTimeControls[1].startTime"),
    ],
)
def test_program_the_node_cannot_run_is_refused(prog, where):
    _refused(*_one(prog), "programs[p]." + where)


def test_whole_day_active_period_and_zero_ramps_are_accepted():
    whole = [{"name": "AbsoluteActivePeriod", "startTime": "12:00:00", "endTime": "12:00:00"}]
    prog = _prog(
        "p",
        [{"startTime": "22:00:00", "command": _cmd(40, rampToLevelTime=0)}],
        [_astro("sunset", 0, 100)],
        activePeriods=whole,
    )
    sched = tc.to_schedule(*_one(prog))
    assert sched["profiles"] == {
        "p": [{"at": "22:00", "level": 40}, {"at": "sunset", "level": 100}]
    }
    assert tc.switch_points(prog) == [("22:00", None, 40), ("sunset", 0, 100)]


def _cal(*rules: dict, default: str | None = "d") -> dict:
    cal = {"id": "c", "ownerCMS": "cms-1", "rules": list(rules)}
    return cal if default is None else cal | {"defaultProgram": default}


D = _prog("d", [_fixed("23:00:00", 30)], [_astro("sunset", 0, 100), _astro("sunrise", 0, 0)])
P = _prog("p", [_fixed("01:00:00", 20)], [_astro("sunset", -15, 100), _astro("sunrise", 0, 0)])
BOTH = {"d": D, "p": P}


def _days(*days: dict, **extra) -> dict:
    return {"type": "ccDay", "days": list(days), **extra}


def _dates(*dates: dict) -> dict:
    return {"type": "ccDate", "dates": list(dates)}


def _on(condition: dict | None = None, **dates: str) -> dict:
    rule: dict[str, Any] = {"program": "p", **dates}
    return rule if condition is None else rule | {"condition": condition}


SAT = _days({"start": 6})


@pytest.mark.parametrize(
    ("cal", "where"),
    [
        (_cal(_on(_days({"start": 1}, occurrences=["2"]))), "rules[0].condition.occurrences"),
        (_cal(_on(_days({"start": 5, "end": 2}))), "rules[0].condition.days[0].end"),
        (_cal(_on(_days())), "rules[0].condition.days"),
        (_cal(_on(startDate="2027-01-01", endDate="--03-01")), "rules[0].endDate"),
        (_cal(_on(startDate="--03-01", endDate="2027-01-01")), "rules[0].endDate"),
        (_cal(_on(startDate="2027-03-01", endDate="2027-01-01")), "rules[0].endDate"),
        (
            _cal(
                _on(
                    _dates({"start": "--12-24"}, {"start": "--07-01", "end": "--07-31"}),
                    startDate="2027-01-01",
                    endDate="2027-12-31",
                )
            ),
            "rules[0].condition.dates[1]",
        ),
        (
            _cal(_on(_dates({"start": "---01", "end": "---07"}), startDate="--06-01")),
            "rules[0].condition.dates[0]",
        ),
        (_cal(_on(SAT), default=None), "defaultProgram"),
        (_cal(_on(SAT), {"program": "nowhere"}), "rules[1].program"),
        (_cal(default="gone"), "defaultProgram"),
        ({**_cal(), "id": "city/north"}, "id"),
        ({**_cal(), "id": "x" * 60}, "id"),
        ({**_cal(), "id": ""}, "id"),
        (_cal(_on(_dates({"start": "--02-30"}))), "rules[0].condition.dates[0].start"),
        (
            _cal(_on(_dates({"start": "--05-01", "end": "---09"}))),
            "rules[0].condition.dates[0].end",
        ),
        (
            _cal(_on(_dates({"start": "--05-09", "end": "--05-01"}))),
            "rules[0].condition.dates[0].end",
        ),
        (_cal(_on({"type": "ccWeather"})), "rules[0].condition.type"),
        (_cal(_on(startDate="2027-02-29")), "rules[0].startDate"),
        ({**_cal(), "rules": {"program": "p"}}, "rules"),
        ({"id": "c", "rules": []}, "ownerCMS"),
        (_cal(_on(startDate="--03-01"), default="caf\u00e9"), "programs[caf\u00e9].id"),
    ],
)
def test_calendar_the_node_cannot_follow_is_refused(cal, where):
    _refused(cal, BOTH | {"caf\u00e9": {**D, "id": "caf\u00e9"}}, where)


def test_refusal_message_says_what_and_where():
    occ = {"type": "ccDay", "days": [{"start": 1}], "occurrences": ["L"]}
    e = _refused(
        _cal({"program": "p"}, {"program": "p", "condition": occ}),
        BOTH,
        "rules[1].condition.occurrences",
    )
    assert str(e) == (
        "rules[1].condition.occurrences: the nth weekday of a month cannot be expressed by a "
        "Lanterna schedule (ccDaySupport noOccurrences)"
    )
    assert e.message.startswith("the nth weekday")  # the gateway prefixes its own path


def test_shape_checks_name_the_bad_value():
    with pytest.raises(tc.Untranslatable) as ei:
        tc.check_calendar({"id": "c", "ownerCMS": "", "rules": [{"program": 3}]})
    assert ei.value.where == "rules[0].program"
    with pytest.raises(tc.Untranslatable) as ei:
        tc.check_calendar([])
    assert ei.value.where == "calendar"
    with pytest.raises(tc.Untranslatable) as ei:
        tc.check_program(
            {**D, "astroClockTimeControls": [{**_astro("sunset", 0, 1), "offset": "5"}]}
        )
    assert ei.value.where == "astroClockTimeControls[0].offset"
    with pytest.raises(tc.Untranslatable) as ei:
        tc.check_program({"type": "ControlProgramOne", "id": "p"})
    assert ei.value.where == "ownerCMS"
    assert tc.check_program(D) is D
    assert tc.check_calendar(CALENDAR) is CALENDAR
    other = {"type": "VendorProgram", "id": "v", "ownerCMS": "x", "anything": [1]}
    assert tc.check_program(other) is other  # refused at translation, not as a payload


def test_program_refs_in_order_once():
    cal = _cal({"program": "p"}, {"program": "q"}, {"program": "p"}, default="d")
    assert tc.program_refs(cal) == ["p", "q", "d"]
    assert tc.program_refs({"id": "c", "ownerCMS": ""}) == []


# -- dates ---------------------------------------------------------------------------------


def _matches(sched: dict, isos: list[str]) -> list[str]:
    return [d for d in isos if _profile_on(sched, d) == "p"]


def test_gday_expands_to_the_months_that_have_that_day():
    sched = tc.to_schedule(
        _cal({"program": "p", "condition": {"type": "ccDate", "dates": [{"start": "---31"}]}}), BOTH
    )
    assert sched["calendar"][0]["dates"] == [
        "--01-31",
        "--03-31",
        "--05-31",
        "--07-31",
        "--08-31",
        "--10-31",
        "--12-31",
    ]
    on29 = tc.to_schedule(
        _cal({"program": "p", "condition": {"type": "ccDate", "dates": [{"start": "---29"}]}}), BOTH
    )
    assert len(on29["calendar"][0]["dates"]) == 12 and "--02-29" in on29["calendar"][0]["dates"]
    days = ["2027-02-28", "2027-03-01", "2027-03-29", "2028-02-29", "2028-01-29", "2028-01-30"]
    assert _matches(on29, days) == ["2027-03-29", "2028-02-29", "2028-01-29"]


def test_gday_range_becomes_twelve_monthly_ranges_cut_at_month_end():
    rng = {"type": "ccDate", "dates": [{"start": "---28", "end": "---31"}]}
    sched = tc.to_schedule(_cal({"program": "p", "condition": rng}), BOTH)
    entries = sched["calendar"][:-1]
    assert len(entries) == 12
    assert entries[1] == {"from": "--02-28", "to": "--02-29", "profile": "p"}
    assert entries[3] == {"from": "--04-28", "to": "--04-30", "profile": "p"}
    days = ["2027-02-27", "2027-02-28", "2027-03-01", "2027-04-30", "2027-05-01", "2027-12-31"]
    assert _matches(sched, days) == ["2027-02-28", "2027-04-30", "2027-12-31"]


def test_yearless_range_wraps_the_year_end():
    sched = tc.to_schedule(
        _cal({"program": "p", "startDate": "--12-20", "endDate": "--01-06"}), BOTH
    )
    assert sched["calendar"][0] == {"from": "--12-20", "to": "--01-06", "profile": "p"}
    days = ["2026-12-19", "2026-12-20", "2027-01-01", "2027-01-06", "2027-01-07", "2027-12-25"]
    assert _matches(sched, days) == ["2026-12-20", "2027-01-01", "2027-01-06", "2027-12-25"]
    wrap = {"type": "ccDate", "dates": [{"start": "--12-24", "end": "--12-26"}]}
    assert tc.to_schedule(_cal({"program": "p", "condition": wrap}), BOTH)["calendar"][0] == {
        "from": "--12-24",
        "to": "--12-26",
        "profile": "p",
    }


def test_open_ended_ranges_close_at_the_parsers_first_and_last_date():
    sched = tc.to_schedule(_cal({"program": "p", "startDate": "2027-03-01"}), BOTH)
    assert sched["calendar"][0] == {"from": "2027-03-01", "to": "9999-12-31", "profile": "p"}
    assert _matches(sched, ["2027-02-28", "2027-03-01", "2090-06-30"]) == [
        "2027-03-01",
        "2090-06-30",
    ]
    until = tc.to_schedule(_cal({"program": "p", "endDate": "2027-03-01"}), BOTH)
    assert until["calendar"][0] == {"from": "0001-01-01", "to": "2027-03-01", "profile": "p"}
    assert _matches(until, ["1990-01-01", "2027-03-01", "2027-03-02"]) == [
        "1990-01-01",
        "2027-03-01",
    ]
    autumn = tc.to_schedule(_cal({"program": "p", "startDate": "--10-01"}), BOTH)
    assert autumn["calendar"][0] == {"from": "--10-01", "to": "--12-31", "profile": "p"}
    # TALQ's defaults mean no range: the rule applies every night, and ends the calendar
    every = tc.to_schedule(
        _cal({"program": "p", "startDate": "--01-01", "endDate": "--12-31"}, {"program": "d"}), BOTH
    )
    assert every["calendar"] == [{"profile": "p"}] and list(every["profiles"]) == ["p"]


def test_weekdays_with_a_range_and_only_referenced_profiles():
    fri = {"type": "ccDay", "days": [{"start": 5}]}
    rule = {"program": "p", "condition": fri, "startDate": "2027-06-01", "endDate": "2027-08-31"}
    sched = tc.to_schedule(_cal(rule), BOTH | {"unused": NEW_YEAR})
    assert sched["calendar"][0] == {
        "weekdays": ["fri"],
        "from": "2027-06-01",
        "to": "2027-08-31",
        "profile": "p",
    }
    assert set(sched["profiles"]) == {"p", "d"}
    days = ["2027-05-28", "2027-06-04", "2027-06-05", "2027-08-27", "2027-09-03"]
    assert _matches(sched, days) == ["2027-06-04", "2027-08-27"]


# -- Lanterna -> TALQ ------------------------------------------------------------------------


def _examples() -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text())
        for p in sorted(REPO.glob("docs/examples/schedule-*.json"))
    }


def test_examples_with_dusk_motion_or_photocell_are_not_representable():
    examples = _examples()
    assert set(examples) == {"schedule-greenwich.json", "schedule-night-saver.json"}
    for name, sched in examples.items():  # both carry motion and photocell sections
        with pytest.raises(tc.Untranslatable) as ei:
            tc.from_schedule(sched, "cms-1")
        assert ei.value.where in ("motion", "photocell"), name
    bare = {
        k: v
        for k, v in examples["schedule-greenwich.json"].items()
        if k not in ("motion", "photocell")
    }
    with pytest.raises(tc.Untranslatable) as ei:
        tc.from_schedule(bare, "cms-1")
    assert ei.value.where == "profiles.new-year[0].at"
    assert "dusk" in ei.value.message


def _without_dusk(sched: dict) -> dict:
    # The example as TALQ can say it: no motion/photocell, dusk/dawn as sunset/sunrise.
    out = {k: v for k, v in sched.items() if k not in ("motion", "photocell")}
    swap = {"dusk": "sunset", "dawn": "sunrise"}
    out["profiles"] = {
        n: [{**st, "at": swap.get(st["at"], st["at"])} for st in steps]
        for n, steps in sched["profiles"].items()
    }
    return out


MIXED = {
    "version": 1,
    "id": "mixed",
    "profiles": {
        "late": [{"at": "sunset", "level": 100}, {"at": "02:00", "level": 40},
                 {"at": "02:00", "level": 20}, {"at": "sunrise", "offset": -5, "level": 0}],
        "early": [{"at": "sunset", "offset": 15, "level": 80}, {"at": "21:00", "level": 50},
                  {"at": "sunrise", "offset": 30, "level": 0}],
        "off": [{"at": "12:00", "level": 0}],
    },
    "calendar": [
        {"dates": ["2027-12-28", "2027-06-01", "--01-02"], "from": "--12-20", "to": "--01-06",
         "profile": "late"},
        {"dates": ["2027-12-24", "--05-01", "2027-12-22", "2027-03-12"],
         "weekdays": ["fri", "sat", "sun"], "profile": "off"},
        {"dates": ["--07-14", "2027-11-11", "2028-01-01"], "from": "2027-01-01",
         "to": "2027-12-31", "profile": "late"},
        {"weekdays": ["mon", "tue", "wed", "sun"], "from": "--11-15", "to": "--02-15",
         "profile": "early"},
        {"dates": ["--08-15", "--09-01"], "from": "--08-01", "to": "--08-31", "profile": "off"},
        {"from": "2027-06-01", "to": "2027-06-30", "profile": "late"},
        {"profile": "early"},
    ],
}  # fmt: skip


def _nights(sched: dict, year: int) -> list[tuple[int, tuple]]:
    lat, lon, tzname = GREENWICH
    plan = fwsched.Plan(fwsched.parse(sched), make_zone(tzname), lat, lon)
    first = _day(f"{year}-01-01")
    return [plan.transitions(d) for d in range(first, _day(f"{year}-12-31") + 1)]


@pytest.mark.parametrize("name", ["schedule-greenwich.json", "schedule-night-saver.json", "mixed"])
def test_round_trip_gives_the_same_nights_all_year(name):
    original = MIXED if name == "mixed" else _without_dusk(_examples()[name])
    cal, programs = tc.from_schedule(original, "cms-1")
    assert all(p["ownerCMS"] == "cms-1" and p["type"] == "ControlProgramOne" for p in programs)
    tc.check_calendar(cal)
    for p in programs:
        tc.check_program(p)
    back = tc.to_schedule(cal, {p["id"]: p for p in programs})
    assert back["id"] == "talq-" + original["id"]
    assert _nights(back, 2027) == _nights(original, 2027)
    profile_of = fwsched.parse(back).profile_for
    again = fwsched.parse(original).profile_for
    for day in range(_day("2027-01-01"), _day("2028-12-31")):  # a leap year too
        assert profile_of(day) == f"{original['id']}.{again(day)}"


def test_from_schedule_writes_talq_objects():
    cal, programs = tc.from_schedule(MIXED, "cms-9")
    late = next(p for p in programs if p["id"] == "mixed.late")
    assert late["fixedTimeControls"] == [{"startTime": "02:00:00", "command": _cmd(20)}]
    assert late["astroClockTimeControls"][1] == {
        "offset": -5,
        "solarEventType": "sunrise",
        "operation": "Set",
        "command": _cmd(0),
    }
    assert cal["id"] == "mixed" and cal["ownerCMS"] == "cms-9"
    assert cal["defaultProgram"] == "mixed.early"
    # fri-sun and yearly 1 May: a one-day yearly range under the weekday condition;
    # 24 December and 12 March 2027 are Fridays, 22 December a Wednesday
    assert cal["rules"][:2] == [
        {"program": "mixed.late", "startDate": "2027-12-28", "endDate": "2027-12-28"},
        {"program": "mixed.late", "condition": {"type": "ccDate", "dates": [{"start": "--01-02"}]}},
    ]
    assert cal["rules"][2:5] == [
        {"program": "mixed.off", "startDate": "2027-12-24", "endDate": "2027-12-24"},
        {"program": "mixed.off", "startDate": "2027-03-12", "endDate": "2027-03-12"},
        {
            "program": "mixed.off",
            "startDate": "--05-01",
            "endDate": "--05-01",
            "condition": {"type": "ccDay", "days": [{"start": 5, "end": 7}]},
        },
    ]
    early = [r for r in cal["rules"] if r["program"] == "mixed.early"]
    assert early == [
        {
            "program": "mixed.early",
            "startDate": "--11-15",
            "endDate": "--02-15",
            "condition": {"type": "ccDay", "days": [{"start": 1, "end": 3}, {"start": 7}]},
        }
    ]


def test_from_schedule_refuses_what_talq_cannot_say():
    for extra, where in (
        ({"motion": {"level": 100, "hold_s": 60, "fade_s": 5}}, "motion"),
        ({"photocell": {"on_lux": 10, "off_lux": 40, "level": 100}}, "photocell"),
    ):
        with pytest.raises(tc.Untranslatable) as ei:
            tc.from_schedule(MIXED | extra, "cms-1")
        assert ei.value.where == where
    dawn = copy.deepcopy(MIXED)
    dawn["profiles"]["early"][2] = {"at": "dawn", "level": 0}
    with pytest.raises(tc.Untranslatable) as ei:
        tc.from_schedule(dawn, "cms-1")
    assert ei.value.where == "profiles.early[2].at"
    hard = copy.deepcopy(MIXED)
    hard["calendar"][1] |= {"from": "2027-01-01", "to": "2027-12-31"}
    with pytest.raises(tc.Untranslatable) as ei:
        tc.from_schedule(hard, "cms-1")
    assert ei.value.where == "calendar[1]"
    with pytest.raises(tc.Untranslatable) as ei:
        tc.from_schedule({**MIXED, "version": 2}, "cms-1")
    assert ei.value.where == "schedule"

# Priority: override > motion > schedule > photocell > failsafe.
from lamp import clock, tz
from lamp.arbiter import Arbiter
from lamp.schedule import Plan, parse

DAY = 86400


def _plan(photocell=True, motion=True):
    s = {
        "version": 1,
        "id": "t",
        "profiles": {"p": [{"at": "18:00", "level": 60}, {"at": "06:00", "level": 0}]},
        "calendar": [{"profile": "p"}],
    }
    if motion:
        s["motion"] = {"level": 100, "hold_s": 60, "fade_s": 5}
    if photocell:
        s["photocell"] = {"on_lux": 20, "off_lux": 60, "level": 80}
    return Plan(parse(s), tz.parse("UTC0"), 51.5, 0.0)


EVENING = clock.days_from_civil(2026, 11, 25) * DAY + 20 * 3600  # 20:00 UTC: level 60
NOON = clock.days_from_civil(2026, 11, 25) * DAY + 12 * 3600  # level 0


def test_schedule_when_time_is_valid():
    a = Arbiter()
    a.set_plan(_plan())
    assert a.decide(EVENING, True, 0) == (60, "schedule", None)
    assert a.decide(NOON, True, 0)[:2] == (0, "schedule")


def test_override_beats_everything_until_it_expires():
    a = Arbiter()
    a.set_plan(_plan())
    a.motion(0)
    a.set_override(20, EVENING + 600)
    assert a.decide(EVENING, True, 1, lux=0)[:2] == (20, "override")
    assert a.next_change(EVENING, 1) == 59  # the motion boost ends first
    assert a.decide(EVENING + 600, True, 700)[:2] == (60, "schedule")
    assert a.override is None


def test_motion_boosts_only_while_the_schedule_has_the_lamp_on():
    a = Arbiter()
    a.set_plan(_plan())
    a.motion(100)
    assert a.decide(EVENING, True, 110)[:2] == (100, "motion")
    # After hold_s the lamp fades back to the schedule at the motion fade rate.
    assert a.decide(EVENING + 60, True, 161) == (60, "schedule", 5)
    a.motion(200)
    assert a.decide(NOON, True, 201)[:2] == (0, "schedule")


def test_photocell_with_hysteresis_when_time_is_not_valid():
    a = Arbiter()
    a.set_plan(_plan())
    assert a.decide(0, False, 0, lux=10)[:2] == (80, "photocell")
    assert a.decide(0, False, 0, lux=40)[:2] == (80, "photocell")  # in the band: stay on
    assert a.decide(0, False, 0, lux=70)[:2] == (0, "photocell")
    assert a.decide(0, False, 0, lux=40)[:2] == (0, "photocell")  # in the band: stay off
    assert a.decide(0, False, 0, lux=15)[:2] == (80, "photocell")


def test_failsafe_when_neither_time_nor_lux_is_known():
    a = Arbiter(failsafe_level=100)
    assert a.decide(0, False, 0) == (100, "failsafe", None)
    a.set_plan(_plan())
    assert a.decide(0, False, 0)[:2] == (100, "failsafe")
    a.set_plan(_plan(photocell=False))
    assert a.decide(0, False, 0, lux=5)[:2] == (100, "failsafe")
    # With valid time and a schedule, the schedule rules even in the dark.
    assert a.decide(NOON, True, 0, lux=0)[:2] == (0, "schedule")

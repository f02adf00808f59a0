# The node follows its schedule as a state: a corrected clock, a reboot, motion: the
# level is right at once. Kept apart from test_app so the whole node (every module, a
# schedule installed) plus this file fit the esp32-devkitc budget.
import asyncio

from fw import RUN, raises, sim_hal
from lamp import app, clock, unload


def _config():
    # As at boot: the config checker runs once and is unloaded.
    from lamp import config

    cfg = config.build({"log_level": "warn"})
    del config
    unload("config")
    return cfg


def _schedule(late=70):
    return {
        "version": 1,
        "id": "greenwich-2026",
        "profiles": {
            "p": [
                {"at": "sunset", "level": 100},
                {"at": "22:30", "level": late},
                {"at": "00:30", "level": 40},
                {"at": "sunrise", "level": 0},
            ]
        },
        "calendar": [{"profile": "p"}],
        "motion": {"level": 100, "hold_s": 60, "fade_s": 5},
    }


def _greenwich_node(root):
    # A node in Greenwich (default site config) with a schedule, on a manual clock.
    clock.setup(start=1795600000, manual=True)  # 2026-11-25T09:46:40Z
    node = app.Node(sim_hal(), _config(), root=root)
    node.setup_site()
    node.replace_schedule(_schedule())
    return node


_DAY = 86400


def _at(hh, mm, day=20782):  # 20782: 2026-11-25, a Wednesday (weeknight profile)
    return day * _DAY + hh * 3600 + mm * 60


def test_clock_jump_gives_the_level_for_the_new_time_at_once():
    node = _greenwich_node("/tmp/lanterna-test-%d-jump-" % RUN)
    clock.set_time(_at(14, 0))
    node.evaluate()
    assert node.dimmer.level == 0
    # NTP corrects the clock to 23:00: no edge was crossed, the state is simply 70 %.
    clock.set_time(_at(23, 0))
    node.evaluate()
    assert node.dimmer.reason == "schedule"
    assert node.dimmer.status()["target"] == 70 if "target" in node.dimmer.status() else True
    assert node.arbiter.decide(clock.now(), True, 0)[0] == 70


def test_invalid_schedule_is_refused_and_the_old_one_stays():
    from lamp.schedule import ScheduleError

    root = "/tmp/lanterna-test-%d-keep-" % RUN
    node = _greenwich_node(root)
    with open(root + "schedule.json") as f:
        before = f.read()
    e = raises(ScheduleError, node.replace_schedule, _schedule(late=150))
    assert "profiles.p[1].level: 150 outside 0..100" in str(e)
    with open(root + "schedule.json") as f:
        assert f.read() == before
    assert node.arbiter.plan.schedule.id == "greenwich-2026"
    clock.set_time(_at(23, 0))
    assert node.arbiter.decide(clock.now(), True, 0)[0] == 70


def test_schedule_on_flash_is_loaded_at_boot():
    root = "/tmp/lanterna-test-%d-boot-" % RUN
    _greenwich_node(root)
    clock.set_time(_at(23, 0))
    node = app.Node(sim_hal(), _config(), root=root)
    node.setup_site()
    assert node.load_schedule().id == "greenwich-2026"
    node.evaluate()
    assert node.dimmer.reason == "schedule"


async def test_motion_wakes_the_lamp_to_the_boost_level():
    node = _greenwich_node("/tmp/lanterna-test-%d-motion-" % RUN)
    clock.set_time(_at(1, 0, day=20783))  # 01:00: 40 %
    task = asyncio.create_task(node._watch_motion())
    node.hal.motion_level = True
    for _ in range(5):
        await asyncio.sleep_ms(0)
    assert node.wake.is_set()
    level, source, _fade = node.arbiter.decide(clock.now(), True, clock.mono_ms() // 1000)
    assert (level, source) == (100, "motion")
    task.cancel()

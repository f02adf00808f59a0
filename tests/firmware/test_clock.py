# clock: the single source of time, with manual stepping for tests and time warp for the
# sim.
import asyncio

from lamp import clock


def test_manual_clock_moves_only_when_told():
    c = clock.setup(start=1795600000, manual=True)
    assert clock.now() == 1795600000 and clock.valid()
    c.advance_ms(61500)
    assert clock.now() == 1795600061
    assert clock.mono_ms() == 61500


def test_set_time_moves_wall_clock_not_monotonic():
    c = clock.setup(start=1000, manual=True)
    c.advance_ms(5000)
    c.set_time(1795600000)
    assert clock.now() == 1795600000
    assert clock.mono_ms() == 5000


def test_iso_format():
    clock.setup(start=0, manual=True)
    assert clock.iso(1795600000) == "2026-11-25T09:46:40Z"
    assert clock.iso(0) == "1970-01-01T00:00:00Z"


async def test_warped_sleep_advances_warp_times_faster():
    clock.setup(warp=36000)
    t0 = clock.mono_ms()
    await clock.sleep_ms(3600 * 1000)  # one hour, 100 ms of real time
    assert clock.mono_ms() - t0 >= 3600 * 1000


async def test_manual_sleep_steps_the_clock():
    clock.setup(start=0, manual=True)
    await clock.sleep_ms(250)
    await asyncio.sleep_ms(0)
    assert clock.mono_ms() == 250


def test_warp_below_one_is_refused():
    try:
        clock.setup(warp=0)
    except ValueError:
        return
    raise AssertionError("warp 0 accepted")

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


def _host_ticks():
    # The host's millisecond ticks as the test sets them: each look finds them one
    # millisecond on (a host that keeps running), and a stall is `host[0] += ms`.
    host = [0]

    def ticks():
        host[0] += 1
        return host[0]

    clock._ticks = ticks
    return host


async def test_a_stalled_host_cannot_carry_node_time_past_a_sleep():
    host = _host_ticks()
    clock.setup(warp=1000, start=1795600000)
    woke = []

    async def sleeper(ms):
        await clock.sleep_ms(ms)
        woke.append(clock.mono_ms())

    first = asyncio.create_task(sleeper(5000))
    later = asyncio.create_task(sleeper(8000))
    await asyncio.sleep_ms(0)  # both have their deadlines
    host[0] += 60000  # a minute's stall: 60,000 s of node time at this warp
    await later
    await first
    assert woke == [5000, 8000]  # each at its own deadline, in order
    assert clock.now() == 1795600008


async def test_the_boot_before_the_first_wait_takes_no_node_time():
    host = _host_ticks()
    clock.setup(warp=1000, start=1795600000)
    host[0] += 1000  # the node booting for a second of host time: 1,000 s at this warp
    assert clock.mono_ms() == 0 and clock.now() == 1795600000
    wake = asyncio.Event()
    task = asyncio.create_task(clock.wait_ms(wake, 60000))
    await asyncio.sleep_ms(0)
    wake.set()
    assert await task  # woken by the event, not timed out by the boot's host time
    assert clock.mono_ms() == 0


async def test_a_stalled_host_cannot_carry_node_time_past_a_wait():
    host = _host_ticks()
    clock.setup(warp=1000)
    wake = asyncio.Event()
    task = asyncio.create_task(clock.wait_ms(wake, 1500))
    await asyncio.sleep_ms(0)
    host[0] += 10  # the deadline is due after 1.5 ms of host time: 10 ms late
    assert not await task
    assert clock.mono_ms() == 1500  # the lighting loop's step, to the millisecond
    task = asyncio.create_task(clock.wait_ms(wake, 60000))
    await asyncio.sleep_ms(0)
    wake.set()
    assert await task
    assert clock.mono_ms() == 1500  # woken at the node time the event was set


async def test_a_warped_sleep_lasts_at_least_a_host_millisecond():
    _host_ticks()
    clock.setup(warp=1000)
    await clock.sleep_ms(100)
    assert clock.mono_ms() == 1000


async def test_a_cancelled_sleep_no_longer_holds_node_time():
    _host_ticks()
    clock.setup(warp=1000)
    task = asyncio.create_task(clock.sleep_ms(5000))
    await asyncio.sleep_ms(0)
    task.cancel()
    await asyncio.sleep_ms(0)
    await clock.sleep_ms(10000)
    assert clock.mono_ms() == 10000  # not held at the cancelled 5000

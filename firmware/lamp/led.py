# The status LED (board "status_led"): what a field engineer at the pole can see without a
# laptop, one pattern per stage of coming up (docs/pole.md, "What the LED shows"). Real
# time, as the watchdog: a blink is for eyes, it does not follow the sim's warp. The
# lamp's own light never depends on this task.
import asyncio

from micropython import const

_PERIOD_MS = const(2000)  # one pattern per 2 s
_BLINK_MS = const(150)  # on, then off as long, per blink
_HEARTBEAT = const(5)  # in service: one blink every 5 periods (10 s), so a dead node shows

BOOT = const(0)  # steady on: powered, the node is starting
NO_LINK = const(1)  # 1 blink per 2 s: no WLAN/Ethernet address yet (or lost)
NO_BROKER = const(2)  # 2 blinks: the network is up, the broker is not (yet) reached
FAULT = const(3)  # 3 blinks: in service, with a lamp fault active (lamp.faults)
OK = const(4)  # 1 blink per 10 s: in service


def stage(node):
    # -> the stage of `node` now (lamp.app.Node): the first that holds, in order.
    link = node.link
    if link is not None and not link.up.is_set():
        return NO_LINK
    net = node.net
    if net is not None and net.mq is not None and not net.mq.connected:
        return NO_BROKER
    if node.faults.active:
        return FAULT
    return OK


def blinks(st, period):
    # -> how many blinks the pattern of `st` has in its `period`-th period (0: dark)
    if st == OK:
        return 1 if period % _HEARTBEAT == 0 else 0
    return st


async def run(node):
    hal = node.hal
    period = 0
    while True:
        n = blinks(stage(node), period)
        for _ in range(n):
            hal.set_status_led(True)
            await asyncio.sleep_ms(_BLINK_MS)
            hal.set_status_led(False)
            await asyncio.sleep_ms(_BLINK_MS)
        await asyncio.sleep_ms(_PERIOD_MS - 2 * _BLINK_MS * n)
        period += 1

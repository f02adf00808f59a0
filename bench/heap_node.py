# MicroPython workload for bench/bench_heap.py, imported from the ROMFS image after the
# image is mounted: boots the virtual node as main.py does (sim board with its sensor
# models, EV charge point, a schedule), runs it with time warped, breaks every sensor and
# repairs it, and prints one JSON line of heap figures (bytes; the image excluded).
import asyncio
import gc
import json
import os
import sys

base = gc.mem_alloc()  # the mounted image and the runner: not the node's
gc.threshold(8192)
from asyncio import wait_for_ms  # noqa: E402, F401 -- as main.py preloads

import lamp.app  # noqa: E402, F401
import lamp.hal.sim  # noqa: E402, F401
import lamp.net.ntp  # noqa: E402, F401
import lamp.schedule  # noqa: E402, F401
from lamp import clock, start, unload  # noqa: E402

node = start.boot(json.loads(os.getenv("HEAP_ARGS")))
del start
unload("start")
gc.collect()
after_boot = gc.mem_alloc() - base
stats = {"peak": 0, "live": 0, "n": 0}


async def sample():
    while True:
        a = gc.mem_alloc()
        stats["peak"] = max(stats["peak"], a)
        stats["n"] += 1
        if stats["n"] % 50 == 0:
            gc.collect()
            stats["live"] = max(stats["live"], gc.mem_alloc())
        await asyncio.sleep_ms(1)


async def faults():
    # Two telemetry periods of normal running, every I2C chip gone (NACK) for four, then
    # back for four: the error and recovery paths run too.
    i2c = node.hal.i2c()
    await clock.sleep_ms(120000)
    i2c.nack.update((0x23, 0x62, 0x76))
    await clock.sleep_ms(240000)
    i2c.nack.clear()
    await clock.sleep_ms(240000)


async def main():
    asyncio.create_task(node.run())
    s = asyncio.create_task(sample())
    await faults()
    s.cancel()
    print(
        "HEAP "
        + json.dumps(
            {
                "after_boot": after_boot,
                "live_max": stats["live"] - base,
                "alloc_peak": stats["peak"] - base,
                "sensors": sorted(s.name for s in node.sensors.sensors) if node.sensors else [],
                "bits": 64 if sys.maxsize > 2**32 else 32,
            }
        )
    )


asyncio.run(main())

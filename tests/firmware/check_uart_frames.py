# MicroPython side of tests/test_sensors_uart_vectors.py (not collected: no test_ prefix).
# Replays each stream from $UART_VECTORS chunk by chunk through the driver, one line at a
# time so the set never sits in the heap, and prints what it checked.
import gc
import json
import os

from lamp import clock
from lamp.hal.sim import SimUART
from lamp.sensors import SensorError
from lamp.sensors.pms5003 import PMS5003
from lamp.sensors.sds011 import SDS011

DRIVERS = {"pms": PMS5003, "sds": SDS011}


async def _command(cls, op):
    uart = SimUART()
    drv = cls(uart, passive=op.endswith("passive"))
    if op.startswith("start"):
        await drv.start()
    elif op == "read_passive":
        try:
            await drv.read()  # nobody answers: OSError after the wait
        except OSError:
            pass
    else:
        await drv.power(op == "wake")
    return bytes(uart.sent)


async def check_frames():
    clock.setup(start=1795600000, manual=True)
    n = {"streams": 0, "reads": 0, "frames": 0, "bad": 0, "commands": 0}
    bad = 0
    with open(os.getenv("UART_VECTORS")) as f:
        for line in f:
            row = json.loads(line)
            cls = DRIVERS[row["dev"]]
            if "cmd" in row:
                n["commands"] += 1
                got = await _command(cls, row["cmd"])
                if got != bytes.fromhex(row["hex"]):
                    bad += 1
                    print("MISMATCH %s %s sent %s" % (row["dev"], row["cmd"], got.hex()))
                continue
            uart = SimUART(4096)
            drv = cls(uart)
            for i, chunk in enumerate(row["chunks"]):
                want = row["want"][i]
                uart.feed(bytes.fromhex(chunk))
                try:
                    got = await drv.read()
                    got = None if got is None else list(got)
                except SensorError:
                    got = "E"
                n["reads"] += 1
                if got != want:
                    bad += 1
                    if bad <= 10:
                        print("MISMATCH %s read %r want %r" % (row["dev"], got, want))
            if (drv.frames, drv.bad) != (row["frames"], row["bad"]):
                bad += 1
                print("MISMATCH %s counts %d %d" % (row["dev"], drv.frames, drv.bad))
            n["streams"] += 1
            n["frames"] += drv.frames
            n["bad"] += drv.bad
            del row, drv, uart
            gc.collect()
    print(
        "UART streams=%d reads=%d frames=%d bad=%d commands=%d mismatches=%d"
        % (n["streams"], n["reads"], n["frames"], n["bad"], n["commands"], bad)
    )
    assert bad == 0

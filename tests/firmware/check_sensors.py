# MicroPython side of tests/test_sensors_i2c_vectors.py (not collected: no test_ prefix).
# Streams register dumps and frames from $SENSOR_VECTORS, one JSON line at a time, feeds
# each to its driver through SimI2C and a dumb chip that only replays the bytes, and
# compares what the driver decodes with the CPython oracle's floating-point values.
import gc
import json
import os
from binascii import unhexlify

from lamp import clock
from lamp.hal.sim import SimI2C
from lamp.sensors import SensorError
from lamp.sensors.bh1750 import BH1750
from lamp.sensors.bme280 import BME280, compensate
from lamp.sensors.scd4x import SCD4x

# Integer formulas against the datasheets' float ones (BME280 sec. 4.2.3 vs 8.1).
TOL_T = 0.01  # degC, BME280 T in 0.01 degC
TOL_P = 1.0  # Pa, BME280 P in Pa/256
TOL_H = 0.01  # %RH, BME280 H in %RH/1024
HALF = 0.05 + 1e-9  # rounding to tenths


class Chip:
    # A register file (`regs`: writes set the pointer) or, without one, canned replies
    # keyed by the command bytes written (None: the reply to any read).
    def __init__(self, regs=None, replies=None):
        self.regs = regs
        self.replies = replies
        self.ptr = 0
        self.out = b""

    def write(self, data):
        if self.regs is not None:
            self.ptr = data[0]
        else:
            self.out = self.replies.get(bytes(data), b"")

    def read(self, n):
        if self.regs is not None:
            return bytes(self.regs[self.ptr : self.ptr + n])
        return self.replies.get(None, self.out)[:n]


def _bus(chip, addr):
    i2c = SimI2C()
    i2c.attach(addr, chip)
    return i2c


async def _bme280(v, worst):
    cal1, cal2, data, adc_t, adc_p, adc_h, t, p, h = v
    regs = bytearray(256)
    regs[0xD0] = 0x60
    regs[0x88:0xA2] = unhexlify(cal1)
    regs[0xE1:0xE8] = unhexlify(cal2)
    regs[0xF7:0xFF] = unhexlify(data)
    drv = BME280(_bus(Chip(regs), 0x76))
    await drv.start()
    got = await drv.read()
    ti, pi, hi = compensate(drv.cal, adc_t, adc_p, adc_h)
    dev = (abs(ti / 100 - t), abs(pi / 256 - p), abs(hi / 1024 - h))
    for i in range(3):
        worst[i] = max(worst[i], dev[i])
    return (
        dev[0] <= TOL_T
        and dev[1] <= TOL_P
        and dev[2] <= TOL_H
        and abs(got[0] / 10 - t) <= HALF + TOL_T
        and abs(got[1] / 10 - h) <= HALF + TOL_H
        and abs(got[2] / 10 - p / 100) <= HALF + TOL_P / 100
    )


async def _scd4x(v):
    # want: "crc" (a SensorError), None (no sample yet) or [co2, degC, %RH]
    status, frame, want = v
    replies = {b"\xe4\xb8": unhexlify(status), b"\xec\x05": unhexlify(frame)}
    drv = SCD4x(_bus(Chip(None, replies), 0x62))
    try:
        got = await drv.read()
    except SensorError:
        return want == "crc"
    if want is None or want == "crc":
        return got is want
    co2, t, rh = want
    return got[0] == co2 and abs(got[1] / 10 - t) <= HALF and abs(got[2] / 10 - rh) <= HALF


async def _scd4x_serial(v):
    frame, serial = v
    drv = SCD4x(_bus(Chip(None, {b"\x36\x82": unhexlify(frame)}), 0x62))
    try:
        await drv.start()
    except SensorError:
        return serial is None
    return drv.serial == serial


async def _bh1750(v):
    data, lux = v
    drv = BH1750(_bus(Chip(None, {None: unhexlify(data)}), 0x23))
    await drv.start()
    (got,) = await drv.read()
    return 0 <= lux * 10 - got < 1  # floored to tenths


async def check_vectors():
    clock.setup(start=1795600000, manual=True)
    counts = {"bme280": 0, "scd4x": 0, "scd4x_serial": 0, "bh1750": 0}
    worst = [0.0, 0.0, 0.0]
    checked = bad = 0
    with open(os.getenv("SENSOR_VECTORS")) as f:
        for line in f:
            v = json.loads(line)
            kind = v.pop(0)
            if kind == "bme280":
                ok = await _bme280(v, worst)
            elif kind == "scd4x":
                ok = await _scd4x(v)
            elif kind == "scd4x_serial":
                ok = await _scd4x_serial(v)
            else:
                ok = await _bh1750(v)
            counts[kind] += 1
            checked += 1
            if not ok:
                bad += 1
                if bad <= 10:
                    print("MISMATCH %s %r" % (kind, v))
            if checked % 100 == 0:
                gc.collect()
    print("SENSORS worst t=%.5f degC p=%.4f Pa h=%.5f %%RH" % tuple(worst))
    print(
        "SENSORS bme280=%d scd4x=%d scd4x_serial=%d bh1750=%d"
        % (counts["bme280"], counts["scd4x"], counts["scd4x_serial"], counts["bh1750"])
    )
    print("SENSORS checked=%d mismatches=%d" % (checked, bad))
    assert bad == 0

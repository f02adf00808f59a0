# Sensirion SCD4x model: 16-bit commands, replies of CRC-protected words, a sample every
# 5 s in periodic mode. Air at the pole: CO2 400..600 ppm (highest at 03:00 UTC, when
# the night air is still), temperature and humidity as lamp.hal.simdev.bme280 gives them,
# the housing 1 K warmer.
# Faults (`fault`): "checksum" (the first CRC of every reply inverted), "nack" /
# "disconnect" (OSError 19; a disconnect powers it down: idle, no samples until
# started again), "stuck" (the same sample over and over), "garbage" (random bytes).
import math
import random

from lamp.hal.simdev import Noise
from lamp.sensors import crc8

SERIAL = (0xF896, 0x9F07, 0x3BB6)
_PERIOD = 5  # s between samples in periodic mode (datasheet sec. 3.5.1)
# What the chip still accepts while measuring (sec. 3.5); anything else is NACKed.
_PERIODIC_OK = (0xEC05, 0x3F86, 0xE4B8)


def air(t):
    # -> (CO2 ppm, degC, %RH) at UTC seconds t.
    c = math.cos(2 * math.pi * (t % 86400 - 54000) / 86400)
    n = math.cos(2 * math.pi * (t % 86400 - 10800) / 86400)
    return int(500 + 100 * n), 13 + 4 * c, 70 - 15 * c


def _frame(words):
    out = bytearray()
    for w in words:
        b = bytes((w >> 8, w & 0xFF))
        out += b + bytes((crc8(b),))
    return out


class SCD4xModel:
    def __init__(self, now=None, noise=True):
        if now is None:
            from lamp import clock

            now = clock.now
        self._now = now
        self.fault = None
        self.measuring = False
        self.due = 0  # UTC s of the next sample
        self.sample = None  # the three raw words of the last sample
        self.reply = None
        self._noise = Noise(3) if noise else None  # off: exact codec tests

    def _bus(self):
        if self.fault == "disconnect":
            self.measuring, self.reply = False, None
        if self.fault in ("nack", "disconnect"):
            raise OSError(19)

    def write(self, data):
        self._bus()
        cmd = (data[0] << 8) | data[1]
        now = self._now()
        self.reply = None
        if self.measuring and cmd not in _PERIODIC_OK:
            raise OSError(19)
        if cmd == 0x3F86:
            self.measuring = False
        elif cmd == 0x21B1:
            self.measuring, self.due = True, now + _PERIOD
        elif cmd == 0x3682:
            self.reply = _frame(SERIAL)
        elif cmd == 0xE4B8:
            self.reply = _frame((0x8006 if self.measuring and now >= self.due else 0x8000,))
        elif cmd == 0xEC05:
            if self.measuring and now >= self.due:
                self.due = now + _PERIOD
                if self.sample is None or self.fault != "stuck":
                    co2, t, rh = air(now)
                    # Sample noise as the datasheet's repeatability: a few ppm, 0.1 K, 0.4 %RH
                    n = self._noise
                    if n is not None:
                        co2 += n(9) - 4
                        t += (n(5) - 2) * 0.05
                        rh += (n(5) - 2) * 0.2
                    self.sample = (co2, int((t + 45) * 65535 / 175 + 0.5), int(rh * 655.35 + 0.5))
            self.reply = _frame(self.sample or (0, 0, 0))
        else:
            raise OSError(19)

    def read(self, n):
        self._bus()
        if self.reply is None:  # no command asked for a reply: NACK
            raise OSError(19)
        out = self.reply[:n]
        self.reply = None
        if self.fault == "garbage":
            return bytes(random.getrandbits(8) for _ in range(n))
        if self.fault == "checksum":
            out[2] ^= 0xFF
        return bytes(out)

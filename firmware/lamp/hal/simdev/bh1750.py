# ROHM BH1750 model: opcodes written one byte at a time (power down/on, reset, modes),
# reads return the 16-bit count, lux * 1.2, big-endian. The light is the hal's `lux`
# when given a hal that sets it, else a clear-sky day: 0 from 18:00 to 06:00 UTC, 20 klx at noon.
# Faults (`fault`): "nack" / "disconnect" (OSError 19; a disconnect powers the chip
# down, so it reads 0 until set up again), "stuck" (the count stops changing),
# "garbage" (random bytes); "checksum" changes nothing: the chip has no checksum.
import math
import random


class BH1750Model:
    def __init__(self, hal=None, now=None):
        if now is None:
            from lamp import clock

            now = clock.now
        self._now = now
        self.hal = hal
        self.fault = None
        self.on = False
        self.mode = 0  # 0: no measurement running
        self.count = 0

    def lux(self):
        if self.hal is not None and self.hal.lux is not None:
            return self.hal.lux
        return 20000 * max(0.0, math.cos(2 * math.pi * (self._now() % 86400 - 43200) / 86400))

    def _bus(self):
        if self.fault == "disconnect":
            self.on, self.mode, self.count = False, 0, 0
        if self.fault in ("nack", "disconnect"):
            raise OSError(19)

    def write(self, data):
        self._bus()
        for op in data:
            if op < 2:
                self.on, self.mode = op == 1, 0
            elif op == 0x07 and self.on:
                self.count = 0
            elif op in (0x10, 0x11, 0x13) and self.on:
                self.mode = op

    def read(self, n):
        self._bus()
        if self.fault == "garbage":
            return bytes(random.getrandbits(8) for _ in range(n))
        if self.mode and self.fault != "stuck":
            self.count = min(int(self.lux() * 1.2 + 0.5), 0xFFFF)
        return bytes((self.count >> 8, self.count & 0xFF))[:n]

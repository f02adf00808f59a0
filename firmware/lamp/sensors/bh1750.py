# ROHM BH1750FVI ambient light sensor (datasheet 2011.11 Rev.D): continuous high-resolution
# mode, 1 lx steps at the default measurement time (MTreg 69). Also what the schedule's
# photocell fallback reads when the clock is not valid.
from lamp import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


# The first H-resolution result takes 180 ms at most (Electrical characteristics).
_FIRST_MS = const(180)


class BH1750:
    ADDR = 0x23  # ADDR pin low; 0x5C with ADDR high
    FIELDS = (("lux_x10", "lux", 0, 655350),)

    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(2)

    async def start(self):
        self.i2c.writeto(self.addr, b"\x01")  # power on
        self.i2c.writeto(self.addr, b"\x10")  # continuously H-resolution mode
        await clock.sleep_ms(_FIRST_MS)

    async def read(self):
        # The chip has no checksum and no status: every read is the latest result.
        b = self._buf
        self.i2c.readfrom_into(self.addr, b)
        # lx = count / 1.2 (datasheet, "Measurement sequence example"), in tenths.
        return (((b[0] << 8) | b[1]) * 100 // 12,)

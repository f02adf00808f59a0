# Byte-level models of I2C chips for the sim board: what SimI2C.attach(addr, model)
# talks to. A model sees the bus as the chip does: write(data) is one write transaction
# (first byte = register pointer, the rest stored with auto-increment), read(n) one read
# transaction from the pointer on. The RTC models keep time from a function returning
# UTC seconds (lamp.clock.now by default, so they follow the sim's time warp).
from lamp.tz import civil, days_from_civil

_Y2000 = 946684800  # both chips come up at 2000-01-01 00:00:00 after a power loss


class Noise:
    # Sensor noise for the models: a small LCG, deterministic per seed (tests repeat
    # exactly), ints only. noise(n) -> 0..n-1.
    def __init__(self, seed=1):
        self.s = seed

    def __call__(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 8) % n


def _bcd(v):
    return ((v // 10) << 4) | (v % 10)


def _unbcd(b):
    d = (b >> 4) * 10 + (b & 0x0F)
    return d if (b & 0x0F) <= 9 else 99  # 99 fails every range check below


class RtcModel:
    # Subclasses say where the seven time registers start (seconds, minutes, hours,
    # [day/weekday], date, month+century, year) and where the weekday sits.
    NREG = 16
    TIME_AT = 0
    WEEKDAY = 3  # index within the time block
    SUNDAY = 7  # the weekday register's value on a Sunday; Monday is 1 on both chips

    def __init__(self, now=None):
        if now is None:
            from lamp import clock

            now = clock.now
        self._now = now
        self.regs = bytearray(self.NREG)
        self.ptr = 0
        self.offset = 0  # chip time - now(): drift, or what the driver last wrote
        self.raw = None  # time registers frozen at what was written when it was garbage
        self.transactions = 0

    def time(self):
        # What the chip's time is now (UTC seconds), or None if it holds garbage.
        return None if self.raw is not None else self._now() + self.offset

    def lose_power(self):
        # Battery flat during a power cut: the oscillator stopped, the chip restarts at
        # its reset value and raises its invalid flag (OSF / VL).
        self.offset = _Y2000 - self._now()
        self.raw = None
        self._set_invalid()

    def _latch(self):
        # The chip copies its counters into the user buffer at START (DS3231 datasheet,
        # "Clock and Calendar"): every field of one read belongs to the same second.
        a = self.TIME_AT
        if self.raw is not None:
            self.regs[a : a + 7] = self.raw
            return
        y, mo, d, h, mi, s, wd = civil(self._now() + self.offset)[:7]
        self.regs[a] = (self.regs[a] & 0x80) | _bcd(s)  # keep a flag in bit 7 (VL)
        self.regs[a + 1] = _bcd(mi)
        self.regs[a + 2] = _bcd(h)
        fields = [_bcd(d), _bcd(mo) | (0x80 if y >= 2100 else 0), _bcd(y % 100)]
        fields.insert(self.WEEKDAY - 3, wd + 1 if wd < 6 else self.SUNDAY)
        self.regs[a + 3 : a + 7] = bytes(fields)

    def _decode(self):
        a = self.TIME_AT
        r = self.regs
        t = list(r[a : a + 7])
        del t[self.WEEKDAY]  # -> s, mi, h, date, month, year
        s, mi, h, d, mo, yy = t
        y = 2000 + _unbcd(yy) + (100 if mo & 0x80 else 0)
        s, mi, h, d, mo = (
            _unbcd(s & 0x7F),
            _unbcd(mi & 0x7F),
            _unbcd(h & 0x3F),
            _unbcd(d & 0x3F),
            _unbcd(mo & 0x1F),
        )
        if not (s < 60 and mi < 60 and h < 24 and 1 <= d <= 31 and 1 <= mo <= 12 and y < 2200):
            return None
        return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s

    def write(self, data):
        self.transactions += 1
        if not data:
            return
        self.ptr = data[0] % self.NREG
        if len(data) == 1:
            return
        self._latch()
        a = self.TIME_AT
        timed = False
        for b in data[1:]:
            timed = timed or a <= self.ptr < a + 7
            self._store(self.ptr, b)
            self.ptr = (self.ptr + 1) % self.NREG
        if timed:
            utc = self._decode()
            if utc is None:
                self.raw = bytes(self.regs[a : a + 7])
            else:
                self.raw = None
                self.offset = utc - self._now()

    def read(self, n):
        self.transactions += 1
        self._latch()
        out = bytearray(n)
        for i in range(n):
            out[i] = self.regs[self.ptr]
            self.ptr = (self.ptr + 1) % self.NREG
        return bytes(out)

    def _store(self, reg, b):
        self.regs[reg] = b

    def _set_invalid(self):
        raise NotImplementedError


def rtc_model(chip, now=None):
    # -> (I2C address, model) for a board's rtc chip name.
    if chip == "ds3231":
        from lamp.hal.simdev.ds3231 import DS3231Model

        return 0x68, DS3231Model(now)
    if chip == "pcf8563":
        from lamp.hal.simdev.pcf8563 import PCF8563Model

        return 0x51, PCF8563Model(now)
    raise ValueError("no sim model for rtc chip %r" % chip)


def sensor_model(name, hal, now=None):
    # -> (I2C address or None for the UART, model) for a sensor name of the board file;
    # UART models attach to the hal's UART and produce their frames as time passes.
    # now: the models' clock (UTC seconds), lamp.clock.now by default.
    if name == "bme280":
        from lamp.hal.simdev.bme280 import BME280Model

        return 0x76, BME280Model(now)
    if name == "bh1750":
        from lamp.hal.simdev.bh1750 import BH1750Model

        return 0x23, BH1750Model(hal, now)
    if name == "scd4x":
        from lamp.hal.simdev.scd4x import SCD4xModel

        return 0x62, SCD4xModel(now)
    if name == "pms5003":
        from lamp.hal.simdev.pms5003 import PMS5003Model

        return None, PMS5003Model(hal.uart(9600), now, live=True)
    if name == "sds011":
        from lamp.hal.simdev.sds011 import SDS011Model

        return None, SDS011Model(hal.uart(9600), now, live=True)
    raise ValueError("no sim model for sensor %r" % name)

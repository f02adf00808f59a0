# External battery-backed RTC chips: they give the node the time at power-on, before
# the network (and NTP) is up, so the schedule can run on clock time from the first
# second. The chip keeps UTC; local time is the clock's business. Drivers talk only to
# the hal's I2C object (the machine.I2C subset: readfrom_mem_into, writeto_mem).
# read() -> UTC seconds, or None when the chip flags its time as untrustworthy;
# write(utc) sets it and clears that flag. I2C errors (OSError 19 when the chip does not
# ACK) propagate: lamp.clock catches them, so a missing chip never stops the node.
from lamp.tz import civil, days_from_civil


def _bcd(b):
    return (b >> 4) * 10 + (b & 0x0F)


def _tobcd(v):
    return ((v // 10) << 4) | (v % 10)


def _utc(y, mo, d, h, mi, s):
    # None when a register holds garbage (a bad BCD digit or a field out of range),
    # which is what a chip that browned out mid-write reads back.
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        return None
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def _badbcd(buf):
    for b in buf:
        if (b & 0x0F) > 9 or (b >> 4) > 9:
            return True
    return False


class DS3231:
    # Maxim DS3231 (datasheet 19-5170, Figure 1 "Timekeeping Registers"): 0x00..0x06 =
    # seconds, minutes, hours, day (1..7), date, month/century, year, all BCD; status
    # register 0x0F bit 7 = OSF, set when the oscillator stopped (power loss with a flat
    # battery): the time is then not trustworthy until written again.
    ADDR = 0x68
    _STATUS = 0x0F
    _OSF = 0x80

    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(7)
        self._one = bytearray(1)

    def _status(self):
        self.i2c.readfrom_mem_into(self.addr, self._STATUS, self._one)
        return self._one[0]

    def read(self):
        if self._status() & self._OSF:
            return None
        b = self._buf
        self.i2c.readfrom_mem_into(self.addr, 0x00, b)
        h = b[2]
        if h & 0x40:  # 12-hour mode (bit 5 = PM), set by some other tool: accept it
            hour = _bcd(h & 0x1F) % 12 + (12 if h & 0x20 else 0)
            h = 0
        else:
            hour = _bcd(h & 0x3F)
            h &= 0x3F
        mo = b[5]
        if _badbcd((b[0] & 0x7F, b[1] & 0x7F, h, b[4] & 0x3F, mo & 0x1F, b[6])):
            return None
        # Month register bit 7 = century: toggles when the year rolls 99 -> 00.
        y = 2000 + _bcd(b[6]) + (100 if mo & 0x80 else 0)
        return _utc(y, _bcd(mo & 0x1F), _bcd(b[4] & 0x3F), hour, _bcd(b[1]), _bcd(b[0]))

    def write(self, utc):
        y, mo, d, h, mi, s, wd = civil(utc)[:7]
        b = self._buf
        b[0], b[1], b[2] = _tobcd(s), _tobcd(mi), _tobcd(h)  # bit 6 clear: 24-hour mode
        b[3] = wd + 1  # day register 1..7, user-defined: 1 = Monday here
        b[4] = _tobcd(d)
        b[5] = _tobcd(mo) | (0x80 if y >= 2100 else 0)
        b[6] = _tobcd(y % 100)
        self.i2c.writeto_mem(self.addr, 0x00, b)
        # Clear OSF only after the time is in: the datasheet says it stays set until
        # written to 0, and a flag cleared before a failed time write would lie.
        self._one[0] = self._status() & ~self._OSF & 0xFF
        self.i2c.writeto_mem(self.addr, self._STATUS, self._one)


class PCF8563:
    # NXP PCF8563 (datasheet Rev. 11, Table 4 "Register overview"): 0x02..0x08 =
    # VL_seconds, minutes, hours, days, weekdays (0..6), century_months, years, BCD.
    # VL (0x02 bit 7) = "integrity of the clock information is not guaranteed" (voltage
    # low); C (0x07 bit 7) = century: NXP says C=1 means 19xx, but we never store dates
    # before 2000, so we read C=1 as 21xx, which clock rejects as implausible.
    ADDR = 0x51
    _VL = 0x80

    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(7)
        self._one = bytearray(1)

    def read(self):
        b = self._buf
        self.i2c.readfrom_mem_into(self.addr, 0x02, b)
        if b[0] & self._VL:
            return None
        # Unused bits read as undefined (datasheet 8.4): mask them before decoding.
        s, mi, h, d, mo = b[0] & 0x7F, b[1] & 0x7F, b[2] & 0x3F, b[3] & 0x3F, b[5] & 0x1F
        if _badbcd((s, mi, h, d, mo, b[6])):
            return None
        y = 2000 + _bcd(b[6]) + (100 if b[5] & 0x80 else 0)
        return _utc(y, _bcd(mo), _bcd(d), _bcd(h), _bcd(mi), _bcd(s))

    def write(self, utc):
        y, mo, d, h, mi, s, wd = civil(utc)[:7]
        # Control_status_1 = 0: STOP clear, so the clock runs (datasheet Table 7).
        self._one[0] = 0
        self.i2c.writeto_mem(self.addr, 0x00, self._one)
        b = self._buf
        b[0] = _tobcd(s)  # VL (bit 7) written 0: the time is good again
        b[1], b[2], b[3] = _tobcd(mi), _tobcd(h), _tobcd(d)
        b[4] = (wd + 1) % 7  # weekdays 0..6, 0 = Sunday as in the datasheet's example
        b[5] = _tobcd(mo) | (0x80 if y >= 2100 else 0)
        b[6] = _tobcd(y % 100)
        self.i2c.writeto_mem(self.addr, 0x02, b)


_DRIVERS = {"ds3231": DS3231, "pcf8563": PCF8563}


def open(board, i2c):
    # The driver for the board's `rtc` section ({"chip": "ds3231"}), or None when the
    # board has no RTC chip. Opening touches no bus: a missing chip shows on read().
    sect = board.get("rtc")
    if not sect:
        return None
    cls = _DRIVERS.get(sect["chip"])
    if cls is None:
        raise ValueError("board rtc: unknown chip %r (known: ds3231, pcf8563)" % sect["chip"])
    return cls(i2c)

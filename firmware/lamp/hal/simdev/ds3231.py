# DS3231 register model (Maxim datasheet 19-5170, Figure 1): 19 registers 0x00..0x12,
# time in 0x00..0x06, control 0x0E, status 0x0F with OSF in bit 7.
from lamp.hal.simdev import RtcModel

_STATUS = 0x0F
_OSF = 0x80


class DS3231Model(RtcModel):
    NREG = 0x13  # the pointer wraps to 0x00 after 0x12, as on the chip
    TIME_AT = 0x00
    WEEKDAY = 3  # register 0x03, 1..7
    SUNDAY = 7  # day register 1..7, Monday = 1 as lamp.rtc writes it

    def __init__(self, now=None):
        super().__init__(now)
        self.regs[0x0E] = 0x1C  # control at power-on: INTCN, RS2, RS1 (datasheet)
        # A chip fresh from the factory has OSF set: its time was never written.
        self.regs[_STATUS] = _OSF

    @property
    def osf(self):
        return bool(self.regs[_STATUS] & _OSF)

    def _set_invalid(self):
        self.regs[_STATUS] |= _OSF

    def _store(self, reg, b):
        if reg == _STATUS:
            # OSF can be cleared by writing 0 but not set by software.
            b = (b & ~_OSF & 0xFF) | (self.regs[_STATUS] & _OSF & b)
        self.regs[reg] = b

# PCF8563 register model (NXP datasheet Rev. 11, Table 4): 16 registers 0x00..0x0F,
# time in 0x02..0x08; VL is bit 7 of 0x02 (VL_seconds), the century bit is bit 7 of
# 0x07 (Century_months).
from lamp.hal.simdev import RtcModel

_VL = 0x80


class PCF8563Model(RtcModel):
    NREG = 0x10
    TIME_AT = 0x02
    WEEKDAY = 4  # register 0x06 (the date comes first on this chip), 0..6
    SUNDAY = 0  # weekdays 0..6 with 0 = Sunday, the datasheet's example

    def __init__(self, now=None):
        super().__init__(now)
        # At power-on VL is set: "clock integrity is not guaranteed" (datasheet 8.4.1).
        self.regs[0x02] = _VL

    @property
    def vl(self):
        return bool(self.regs[0x02] & _VL)

    def _set_invalid(self):
        self.regs[0x02] |= _VL

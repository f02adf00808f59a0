# Bosch BME280 register model: chip id, trimming parameters in "NVM", the control
# registers, and forced/normal measurements whose raw ADC values are found by searching
# the datasheet's compensation (sec. 4.2.3) for the weather of the moment, so a driver
# decodes real-looking raw data with a real-looking calibration.
# Faults (`fault`): "checksum" (the chip has no CRC: a skipped temperature, 0x80000),
# "nack" / "disconnect" (OSError 19; a disconnect also loses the configuration, as a
# power cycle does), "stuck" (the data registers keep their last measurement),
# "garbage" (random bytes on every read).
import math
import random
import struct

from lamp.hal.simdev import Noise
from lamp.sensors.bme280 import compensate

# dig_T1..dig_P9 are the worked example of the BMP280 datasheet (sec. 3.12, the same
# T/P compensation: adc_T 519888 -> 25.08 degC, adc_P 415148 -> 100653 Pa); dig_H1..dig_H6
# are typical of production parts.
_T = (27504, 26435, -1000)  # dig_T1..T3
_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)  # dig_P1..P9
_H = (75, 362, 0, 313, 50, 30)  # dig_H1..H6
CAL = _T + _P + _H
_DATA_RESET = b"\x80\x00\x00\x80\x00\x00\x80\x00"  # registers 0xF7..0xFE after reset


def weather(t):
    # -> (degC, %RH, hPa) at UTC seconds t: 8..16 degC peaking at 15:00, humidity the
    # other way round (55..85 %), pressure swinging 6 hPa around 1013 over three days.
    c = math.cos(2 * math.pi * (t % 86400 - 54000) / 86400)
    return 12 + 4 * c, 70 - 15 * c, 1013 + 6 * math.sin(2 * math.pi * t / 259200)


def _find(f, want, n):
    # Smallest a in 0..n-1 with f(a) >= want (f non-decreasing).
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if f(mid) < want:
            lo = mid + 1
        else:
            hi = mid
    return lo


class BME280Model:
    def __init__(self, now=None, cal=CAL, noise=True):
        if now is None:
            from lamp import clock

            now = clock.now
        self._now = now
        self.cal = cal
        self.fault = None
        self.regs = r = bytearray(256)
        self.ptr = 0
        self.busy = 0  # status reads left that show "measuring"
        self._noise = Noise(2) if noise else None  # off: exact codec tests
        r[0xD0] = 0x60
        r[0x88:0xA2] = struct.pack("<HhhHhhhhhhhhxB", *cal[:13])
        h2, h3, h4, h5, h6 = cal[13:]
        # dig_H4 = 0xE4[7:0] << 4 | 0xE5[3:0], dig_H5 = 0xE6[7:0] << 4 | 0xE5[7:4]
        r[0xE1:0xE8] = struct.pack(
            "<hBBBBb", h2, h3, (h4 >> 4) & 0xFF, (h4 & 15) | (h5 & 15) << 4, (h5 >> 4) & 0xFF, h6
        )
        self.reset()

    def reset(self):
        # Power-on / soft reset: sleep mode, nothing configured, data at reset values.
        self.regs[0xF2:0xF6] = bytes(4)
        self.regs[0xF7:0xFF] = _DATA_RESET
        self.osrs_h = 0  # ctrl_hum as latched by the last ctrl_meas write

    def _bus(self):
        if self.fault == "disconnect":
            self.reset()
        if self.fault in ("nack", "disconnect"):
            raise OSError(19)

    def write(self, data):
        # One transaction: (register, value) pairs; a lone byte sets the read pointer.
        self._bus()
        self.ptr = data[0]
        for i in range(1, len(data), 2):
            reg, v = data[i - 1], data[i]
            if reg == 0xE0 and v == 0xB6:
                self.reset()
            elif reg in (0xF2, 0xF4, 0xF5):
                self.regs[reg] = v
                if reg == 0xF4:
                    self.osrs_h = self.regs[0xF2] & 7
                    if v & 3:
                        self._measure(v)

    def _measure(self, ctrl):
        self.busy = 2
        if ctrl & 3 != 3:
            self.regs[0xF4] = ctrl & 0xFC  # forced: back to sleep when done
        if self.fault == "stuck" and self.regs[0xFA] != 0x80:
            return
        t, h, p = weather(self._now())
        # Measurement noise at oversampling x1 (datasheet Table 2, 5, 6: a few hundredths
        # of a degree, a few Pa, a few hundredths of %RH), plus the air's own flutter.
        n = self._noise
        if n is not None:
            t += (n(7) - 3) * 0.03
            p += (n(7) - 3) * 0.04
            h += (n(7) - 3) * 0.1
        c = self.cal
        at = _find(lambda a: compensate(c, a, 0, 0)[0], int(t * 100), 1 << 20)
        ap = _find(lambda a: -compensate(c, at, a, 0)[1], -int(p * 25600), 1 << 20)
        ah = _find(lambda a: compensate(c, at, 0, a)[2], int(h * 1024), 1 << 16)
        if not ctrl >> 5 or self.fault == "checksum":
            at = 0x80000  # temperature skipped
        if not (ctrl >> 2) & 7:
            ap = 0x80000
        if not self.osrs_h:
            ah = 0x8000
        self.regs[0xF7:0xFF] = struct.pack(
            ">HBHBH", ap >> 4, (ap & 15) << 4, at >> 4, (at & 15) << 4, ah
        )

    def read(self, n):
        self._bus()
        if self.fault == "garbage":
            return bytes(random.getrandbits(8) for _ in range(n))
        p = self.ptr
        if p <= 0xF3 < p + n:
            self.regs[0xF3] = 0x08 if self.busy else 0
            self.busy -= 1 if self.busy else 0
        self.ptr = (p + n) & 0xFF
        return bytes(self.regs[p : p + n])

# Bosch BME280 (datasheet BST-BME280-DS002): temperature, humidity and pressure on I2C.
# Forced mode, oversampling x1 on all three, filter off: one measurement per read(), the
# chip sleeps in between (weather monitoring, datasheet sec. 3.5.1). Values come from the
# datasheet's integer compensation (sec. 4.2.3), so no float is ever allocated.
import struct

from lamp import clock
from lamp.sensors import SensorError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_ID = const(0xD0)  # chip id register: 0x60 on a BME280 (0x58 is a BMP280: no humidity)
_CHIP = const(0x60)
_RESET = const(0xE0)  # write 0xB6: soft reset
_CAL1 = const(0x88)  # 0x88..0xA1: dig_T1..dig_P9, (0xA0 unused), dig_H1
_CAL2 = const(0xE1)  # 0xE1..0xE7: dig_H2..dig_H6
_CTRL_HUM = const(0xF2)  # takes effect only at the next ctrl_meas write (sec. 5.4.3)
_STATUS = const(0xF3)  # bit 3 measuring, bit 0 im_update (NVM copy after reset)
_CTRL_MEAS = const(0xF4)  # osrs_t[7:5] osrs_p[4:2] mode[1:0]
_CONFIG = const(0xF5)
_DATA = const(0xF7)  # 0xF7..0xFE: press msb lsb xlsb, temp msb lsb xlsb, hum msb lsb
_SKIPPED = const(0x80000)  # what a skipped (or never measured) 20-bit channel reads
_POLLS = const(25)  # 2 ms each: x1/x1/x1 takes 9.3 ms at most (sec. 9.1)


def compensate(c, adc_t, adc_p, adc_h):
    # BME280_compensate_T_int32, _P_int64 and _H_int32 (sec. 4.2.3, 8.2), transcribed
    # with Python's unbounded ints (no overflow, >> is arithmetic as in Bosch's C).
    # c = (T1, T2, T3, P1..P9, H1..H6). -> (T in 0.01 degC, P in Pa/256, H in %RH/1024).
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6 = c
    v1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    v2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    tf = v1 + v2
    t = (tf * 5 + 128) >> 8
    v1 = tf - 128000
    v2 = v1 * v1 * p6 + ((v1 * p5) << 17) + (p4 << 35)
    v1 = (((1 << 47) + ((v1 * v1 * p3) >> 8) + ((v1 * p2) << 12)) * p1) >> 33
    if v1 == 0:
        p = 0  # the datasheet's guard against a division by zero
    else:
        p = 1048576 - adc_p
        n = ((p << 31) - v2) * 3125
        p = n // v1 if n >= 0 else -(-n // v1)  # C divides towards zero
        p = ((p + ((p9 * (p >> 13) * (p >> 13)) >> 25) + ((p8 * p) >> 19)) >> 8) + (p7 << 4)
    v = tf - 76800
    v = (((adc_h << 14) - (h4 << 20) - h5 * v + 16384) >> 15) * (
        ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14
    )
    v -= ((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4
    return t, p, min(max(v, 0), 419430400) >> 12


class BME280:
    ADDR = 0x76  # SDO to GND; 0x77 with SDO to VDDIO
    FIELDS = (
        ("temp_x10", "degC", -400, 850),
        ("rh_x10", "%", 0, 1000),
        ("pressure_x10", "hPa", 3000, 11000),
    )

    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self.cal = None  # the chip's trimming parameters, read by start()
        self._buf = bytearray(8)
        self._one = bytearray(1)

    def _reg(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._one)
        return self._one[0]

    async def _wait(self, mask):
        for _ in range(_POLLS):
            await clock.sleep_ms(2)
            if not self._reg(_STATUS) & mask:
                return
        raise SensorError("bme280: busy for %d ms" % (2 * _POLLS))

    async def start(self):
        cid = self._reg(_ID)
        if cid != _CHIP:
            raise SensorError("bme280: chip id 0x%02x, want 0x60" % cid)
        w = self.i2c.writeto_mem
        w(self.addr, _RESET, b"\xb6")  # known state whatever ran before us
        await self._wait(0x01)  # trimming parameters copied from NVM
        r = self.i2c.readfrom_mem
        c = struct.unpack("<HhhHhhhhhhhhxB", r(self.addr, _CAL1, 26))
        h2, h3, e4, e5, e6, h6 = struct.unpack("<hBbBbb", r(self.addr, _CAL2, 7))
        # dig_H4 and dig_H5 are signed 12-bit values sharing 0xE5 (datasheet Table 16).
        self.cal = c + (h2, h3, (e4 << 4) | (e5 & 0x0F), (e6 << 4) | (e5 >> 4), h6)
        w(self.addr, _CTRL_HUM, b"\x01")  # osrs_h x1; before ctrl_meas, which latches it
        w(self.addr, _CTRL_MEAS, b"\x24")  # osrs_t x1, osrs_p x1, sleep mode
        w(self.addr, _CONFIG, b"\x00")  # filter off; t_sb is unused in forced mode

    async def read(self):
        if self.cal is None:
            raise SensorError("bme280: not started")
        # The same oversampling in forced mode: one measurement, then back to sleep.
        self.i2c.writeto_mem(self.addr, _CTRL_MEAS, b"\x25")
        await self._wait(0x08)
        b = self._buf
        self.i2c.readfrom_mem_into(self.addr, _DATA, b)
        adc_p = (b[0] << 12) | (b[1] << 4) | (b[2] >> 4)
        adc_t = (b[3] << 12) | (b[4] << 4) | (b[5] >> 4)
        adc_h = (b[6] << 8) | b[7]
        # A skipped channel keeps its reset value: the chip lost its configuration (a
        # power cycle clears ctrl_hum) or the read is not of this chip's data.
        if adc_t == _SKIPPED or adc_p == _SKIPPED or adc_h == 0x8000:
            raise SensorError("bme280: skipped measurement")
        t, p, h = compensate(self.cal, adc_t, adc_p, adc_h)
        # 0.01 degC, Pa/256 and %RH/1024 rounded to tenths of degC, %RH and hPa.
        return (t + 5) // 10, (h * 10 + 512) >> 10, (p + 1280) // 2560

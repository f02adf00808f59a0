# Sensirion SCD40/SCD41 CO2 sensor (datasheet): photoacoustic CO2 plus temperature
# and humidity, one sample every 5 s in periodic mode. Commands are 16-bit words sent
# big-endian; every 16-bit word the chip sends is followed by its CRC-8 (sec. 3.11).
import struct

from lamp import clock
from lamp.sensors import SensorError, crc8

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_START = const(0x21B1)  # start_periodic_measurement (sec. 3.5.1)
_READ = const(0xEC05)  # read_measurement (sec. 3.5.2): 1 ms before the reply
_STOP = const(0x3F86)  # stop_periodic_measurement (sec. 3.5.3): 500 ms to take effect
_SERIAL = const(0x3682)  # get_serial_number (sec. 3.9.2): idle mode only
_READY = const(0xE4B8)  # get_data_ready_status (sec. 3.8.2): low 11 bits 0 = no sample


class SCD4x:
    ADDR = 0x62
    FIELDS = (("co2", "ppm", 0, 40000), ("temp_x10", "degC", -100, 600), ("rh_x10", "%", 0, 1000))

    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self.serial = None  # 48-bit serial number, read by start()
        self._cmd = bytearray(2)
        self._rx3 = bytearray(3)
        self._rx9 = bytearray(9)

    async def _do(self, cmd, rx=None, ms=1):
        # Send a command; with `rx`, wait `ms` and read the reply into it, checking each
        # word's CRC. -> rx
        struct.pack_into(">H", self._cmd, 0, cmd)
        self.i2c.writeto(self.addr, self._cmd)
        await clock.sleep_ms(ms)
        if rx is not None:
            self.i2c.readfrom_into(self.addr, rx)
            for i in range(0, len(rx), 3):
                if crc8(memoryview(rx)[i : i + 2]) != rx[i + 2]:
                    raise SensorError("scd4x: CRC error in word %d" % (i // 3))
        return rx

    async def start(self):
        # A sensor left measuring (a warm reboot) ignores most commands: stop it first.
        await self._do(_STOP, None, 500)
        s = struct.unpack(">HxHxHx", await self._do(_SERIAL, self._rx9))
        self.serial = (s[0] << 32) | (s[1] << 16) | s[2]
        await self._do(_START, None, 0)

    async def read(self):
        if struct.unpack(">Hx", await self._do(_READY, self._rx3))[0] & 0x07FF == 0:
            return None
        co2, t, rh = struct.unpack(">HxHxHx", await self._do(_READ, self._rx9))
        # T = -45 + 175 * raw / 65535 degC, RH = 100 * raw / 65535 % (sec. 3.5.2),
        # rounded to tenths in integers.
        return co2, (1750 * t + 32767) // 65535 - 450, (1000 * rh + 32767) // 65535

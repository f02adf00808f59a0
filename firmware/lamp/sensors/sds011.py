# Nova Fitness SDS011 particulate sensor on a UART (9600 8N1). "Laser Dust Sensor Control
# Protocol" V1.3: the 10-byte frame the sensor sends (sec. 1, once a second in active
# reporting mode) and the 19-byte host commands (sec. 2: reporting mode, query, sleep).
# Parsing follows lamp.sensors.pms5003: incremental, resynchronising on the header.
import struct

from lamp.sensors.uart import UartSensor

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_FRAME = const(10)  # AA C0 PM25 lo hi, PM10 lo hi, ID1 ID2, checksum, AB
_HEAD = const(0xAA)
_DATA = const(0xC0)  # a measurement
_REPLY = const(0xC5)  # the answer to a set/get command: same shape, no measurement
_TAIL = const(0xAB)
_SET_MODE = const(2)  # data byte 1 of a command; data 2 = 1 set; data 3 = 0 active, 1 query
_QUERY = const(4)
_SLEEP = const(6)  # data 3 = 0 sleep, 1 work


class SDS011(UartSensor):
    NAME = "sds011"
    FRAME = _FRAME
    FIELDS = (("pm2_5_x10", "ug/m3", 0, 10000), ("pm10_x10", "ug/m3", 0, 10000))

    def _cmd(self, cmd, set_=0, arg=0):
        # AA B4 DATA1..DATA15 checksum AB; DATA14, 15 = FF FF (any sensor id);
        # checksum = low byte of DATA1 + .. + DATA15.
        s = (cmd + set_ + arg + 0xFF + 0xFF) & 0xFF
        self._uart.write(
            bytes((_HEAD, 0xB4, cmd, set_, arg, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, s, _TAIL))
        )

    async def start(self):
        self._n = 0
        self._cmd(_SLEEP, 1, 1)
        self._cmd(_SET_MODE, 1, 1 if self.passive else 0)

    async def power(self, on):
        self._cmd(_SLEEP, 1, 1 if on else 0)

    def _ask(self):
        self._cmd(_QUERY)

    def _parse(self):
        # As PMS5003._parse: -> number of good measurement frames consumed.
        buf = self._buf
        uart = self._uart
        n = self._n
        good = 0
        while True:
            i = 0
            while i < n and (
                buf[i] != _HEAD or (i + 1 < n and buf[i + 1] != _DATA and buf[i + 1] != _REPLY)
            ):
                i += 1
            if i:
                buf[: n - i] = buf[i:n]
                n -= i
            if n < _FRAME:
                if not uart.any():
                    break
                r = uart.readinto(memoryview(buf)[n:])
                if not r:
                    break
                n += r
                continue
            if sum(buf[2:8]) & 0xFF == buf[8] and buf[9] == _TAIL:
                if buf[1] == _DATA:
                    self.value = struct.unpack_from("<HH", buf, 2)
                    self.frames += 1
                    good += 1
                n = 0
                continue
            self.bad += 1  # drop the start byte only: a frame may begin inside
            buf[: n - 1] = buf[1:n]
            n -= 1
        self._n = n
        return good

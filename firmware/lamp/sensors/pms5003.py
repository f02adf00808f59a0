# Plantower PMS5003 particulate sensor on a UART (9600 8N1). "PMS5003 series data manual"
# V2.3 (2016): Appendix I gives the 32-byte frame the sensor sends (about once a second in
# active mode), Appendix II the 7-byte host commands (passive mode, sleep). Frames are
# parsed incrementally from whatever the UART holds, so a frame split across reads, noise
# on the line or a UART overflow costs at most the frames it touched.
import struct

from lamp.sensors.uart import UartSensor

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_FRAME = const(32)  # 0x42 0x4D, length 28, 13 data words, checksum (Appendix I)
_DATA_LEN = const(28)
# The sensor answers a mode or sleep command with a short frame of length 4:
# 42 4D 00 04 CMD DATA sum (observed on the device, not in the manual; pimoroni's
# pms5003 library reads it too). It carries no measurement and is skipped.
_ACK_LEN = const(4)
_CMD_MODE = const(0xE1)  # data 0 passive, 1 active
_CMD_READ = const(0xE2)  # passive mode: send one frame
_CMD_SLEEP = const(0xE4)  # data 0 sleep, 1 wake up


class PMS5003(UartSensor):
    NAME = "pms5003"
    FRAME = _FRAME
    FIELDS = (("pm1", "ug/m3", 0, 1000), ("pm2_5", "ug/m3", 0, 1000), ("pm10", "ug/m3", 0, 1000))

    def _cmd(self, cmd, data):
        # Appendix II: 42 4D CMD DATAH DATAL LRCH LRCL, LRC = sum of the first 5 bytes.
        s = 0x42 + 0x4D + cmd + data
        self._uart.write(bytes((0x42, 0x4D, cmd, 0, data, s >> 8, s & 0xFF)))

    async def start(self):
        # Wake it (it may have been put to sleep before a soft reset), then set the mode.
        self._n = 0
        self._cmd(_CMD_SLEEP, 1)
        self._cmd(_CMD_MODE, 0 if self.passive else 1)

    async def power(self, on):
        # Sleep stops the fan and laser; after waking the manual asks for 30 s of settling.
        self._cmd(_CMD_SLEEP, 1 if on else 0)

    def _ask(self):
        self._cmd(_CMD_READ, 0)

    def _parse(self):
        # Consume what the UART holds -> number of good data frames among it.
        buf = self._buf
        uart = self._uart
        n = self._n
        good = 0
        while True:
            # Resynchronise: drop what cannot start a frame (0x42 0x4D, or a 0x42 last).
            i = 0
            while i < n and (buf[i] != 0x42 or (i + 1 < n and buf[i + 1] != 0x4D)):
                i += 1
            if i:
                buf[: n - i] = buf[i:n]
                n -= i
            need = 4
            if n >= 4:
                need = (buf[2] << 8 | buf[3]) + 4
                if need != _FRAME and need != _ACK_LEN + 4:
                    need = 0  # a length no frame has: a false start
            if need and n < need:
                if not uart.any():
                    break
                r = uart.readinto(memoryview(buf)[n:need])
                if not r:
                    break
                n += r
                continue
            if need and sum(buf[: need - 2]) & 0xFFFF == buf[need - 2] << 8 | buf[need - 1]:
                if need == _FRAME:
                    # data words 4..6: PM1.0, PM2.5, PM10 under atmospheric environment
                    self.value = struct.unpack_from(">HHH", buf, 10)
                    self.frames += 1
                    good += 1
                buf[: n - need] = buf[need:n]
                n -= need
                continue
            # Bad length or checksum: drop only the start byte, so a good frame that
            # began inside the bad one is still found.
            self.bad += 1
            buf[: n - 1] = buf[1:n]
            n -= 1
        self._n = n
        return good

# Byte-level model of an SDS011 on a SimUART (protocol V1.3); the daily cycle, tick() and
# the fault switches are lamp.hal.simdev.pms5003.ParticleModel's.
import struct

from lamp.hal.simdev.pms5003 import ParticleModel


class SDS011Model(ParticleModel):
    CHECKSUM_AT = -2
    ID = 0xA160  # the sensor id in every frame (ID1, ID2)

    def _frame(self, kind, a, b):
        # AA kind a(2, LE) b(2, LE) id checksum AB; checksum = low byte of bytes 2..7.
        f = bytearray(10)
        struct.pack_into("<BBHHH", f, 0, 0xAA, kind, a, b, self.ID)
        f[8] = sum(f[2:8]) & 0xFF
        f[9] = 0xAB
        return f

    def frame(self):
        self.sent += 1
        p1, p25, p10 = self.pm()
        # tenths of ug/m3, as the sensor resolves them (made up, but frozen when "stuck")
        return self._frame(0xC0, p25 * 10 + p1 % 10, p10 * 10 + p25 % 10)

    def on_write(self, data):
        # Commands (sec. 2): AA B4 DATA1..15 checksum AB; DATA14-15 = FF FF or our id.
        if len(data) != 19 or data[0] != 0xAA or data[1] != 0xB4 or data[18] != 0xAB:
            return
        if sum(data[2:17]) & 0xFF != data[17]:
            return
        cmd, set_, arg = data[2], data[3], data[4]
        if self.fault == "disconnect" or (self.asleep and not (cmd == 6 and set_ and arg)):
            return
        if cmd == 4:
            self.push(self.frame())
            return
        if cmd == 2 and set_:
            self.passive = arg == 1
        elif cmd == 6 and set_:
            self.asleep = arg == 0
        elif cmd not in (2, 6):
            return
        # The reply: C5 cmd set value 00 id, value the mode now in force.
        value = (1 if self.passive else 0) if cmd == 2 else (0 if self.asleep else 1)
        self.uart.feed(self._frame(0xC5, cmd | set_ << 8, value))

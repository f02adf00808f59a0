# Byte-level model of a PMS5003 on a SimUART, and the part every particulate-sensor model
# shares (lamp.hal.simdev.sds011 builds on it). A model attaches itself as the UART's
# `model`: commands the driver writes arrive in on_write(data); tick() is one second of
# the sensor's life and, in active mode, feeds one frame. Tests (or a sim task) call
# tick(); the values follow a daily cycle of the `now` clock (UTC seconds, lamp.clock.now
# by default): a background level with rush-hour peaks at 08:00 and 18:00.
#
# Fault injection, by the `fault` attribute: None; "checksum" (every frame's checksum
# wrong); "garbage" (random bytes before each frame); "stuck" (the values freeze);
# "disconnect" (no bytes at all, commands unanswered); "partial" (each frame fed in two
# parts, its tail with the next tick).
import struct

from lamp.hal.simdev import Noise

_PEAKS = (8 * 3600, 18 * 3600)
_PEAK_S = 7200  # half-width of a rush-hour peak


class ParticleModel:
    CHECKSUM_AT = -1  # where the frame's checksum sits (corrupted by fault "checksum")

    def __init__(self, uart=None, now=None, seed=1, base=8, peak=30, live=False):
        if now is None:
            from lamp import clock

            now = clock.now
        self._now = now
        self._rand = Noise(seed)
        self.base = base  # PM2.5 ug/m3 at night
        self.peak = peak  # added at the top of a rush hour
        self.passive = False
        self.asleep = False
        self.fault = None
        self.sent = 0  # measurement frames produced
        self._pm = None
        self._rest = b""
        self.live = live  # step() from the UART: one tick per second of `now`
        self._t = None
        self.uart = uart
        if uart is not None:
            uart.model = self

    def pm(self):
        # -> (pm1, pm2_5, pm10) in ug/m3 now; frozen while the fault is "stuck".
        if self._pm is None or self.fault != "stuck":
            s = self._now() % 86400
            v = self.base + self._rand(3)
            for c in _PEAKS:
                d = abs(s - c)
                if d < _PEAK_S:
                    v += self.peak * (_PEAK_S - d) // _PEAK_S
            self._pm = (v * 2 // 3, v, v * 3 // 2 + self._rand(4))
        return self._pm

    def push(self, frame):
        # Put one frame on the line, through the fault in force.
        f = self.fault
        if f == "disconnect" or self.uart is None:
            return
        if self._rest:
            self.uart.feed(self._rest)
            self._rest = b""
        if not frame:
            return
        if f == "checksum":
            frame[self.CHECKSUM_AT] ^= 0x5A
        elif f == "garbage":
            self.uart.feed(bytes(self._rand(256) for _ in range(1 + self._rand(24))))
        elif f == "partial":
            cut = 1 + self._rand(len(frame) - 1)
            self._rest = bytes(frame[cut:])
            frame = frame[:cut]
        self.uart.feed(frame)

    def step(self):
        # Called whenever the driver looks at the UART: the ticks the time since the last
        # look is worth, at most one (the UART would have dropped older frames anyway).
        t = int(self._now())
        if self._t != t:
            self._t = t
            self.tick()

    def tick(self):
        if not (self.passive or self.asleep):
            self.push(self.frame())
        elif self._rest:  # the tail of a split answer
            self.push(b"")

    def frame(self):
        raise NotImplementedError


class PMS5003Model(ParticleModel):
    def frame(self):
        # Appendix I: CF=1 and atmospheric PM (equal below 30 ug/m3 or so), then counts
        # per 0.1 l of particles above 0.3, 0.5, 1, 2.5, 5, 10 um, and a reserved word.
        self.sent += 1
        p1, p25, p10 = self.pm()
        c = p25 * 60
        f = bytearray(32)
        struct.pack_into(
            ">BBH13H", f, 0, 0x42, 0x4D, 28, p1, p25, p10, p1, p25, p10,
            c * 3, c, c // 5, c // 40, c // 200, c // 500, 0,
        )  # fmt: skip
        struct.pack_into(">H", f, 30, sum(f[:30]))
        return f

    def on_write(self, data):
        # Appendix II commands: 42 4D CMD 00 DATA LRC(2). A bad LRC is ignored.
        if len(data) != 7 or data[:2] != b"BM" or sum(data[:5]) != data[5] << 8 | data[6]:
            return
        cmd, arg = data[2], data[4]
        if self.fault == "disconnect" or (self.asleep and not (cmd == 0xE4 and arg)):
            return
        if cmd == 0xE2:
            if self.passive:
                self.push(self.frame())
            return
        if cmd == 0xE1:
            self.passive = arg == 0
        elif cmd == 0xE4:
            self.asleep = arg == 0
        else:
            return
        ack = bytearray(b"BM\x00\x04\x00\x00\x00\x00")
        ack[4], ack[5] = cmd, arg
        struct.pack_into(">H", ack, 6, sum(ack[:6]))
        self.uart.feed(ack)

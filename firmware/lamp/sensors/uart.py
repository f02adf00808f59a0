# What the UART particulate drivers (lamp.sensors.pms5003, .sds011) share: one buffer for
# the frame being assembled, the frame counters, and read(). A driver sets NAME and FRAME
# (its longest frame) and implements _parse() (consume what the UART holds -> number of
# good measurement frames) and _ask() (passive mode: request one frame).
from lamp import clock
from lamp.sensors import SensorError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_POLL_MS = const(20)
_ANSWER_MS = const(1000)  # passive mode: the frame follows the request within this
_ETIMEDOUT = const(110)


class UartSensor:
    NAME = "uart"
    FRAME = 32

    def __init__(self, uart, passive=False):
        self._uart = uart
        self.passive = passive
        self._buf = bytearray(self.FRAME)  # the frame being assembled; the only buffer
        self._n = 0  # bytes of it received
        self.frames = 0  # good measurement frames parsed
        self.bad = 0  # frames dropped for a bad length, tail or checksum
        self.value = None  # the newest good frame's values

    def _parse(self):
        raise NotImplementedError

    def _ask(self):
        raise NotImplementedError

    async def read(self):
        # Active mode: the newest frame since the last read, or None. Passive mode: ask
        # for a frame and wait for it. SensorError when only bad frames came.
        bad = self.bad
        if self.passive:
            self._ask()
        waited = 0
        while not self._parse():
            if not self.passive or waited >= _ANSWER_MS:
                if self.bad != bad:
                    raise SensorError("%s: %d bad frames" % (self.NAME, self.bad - bad))
                if self.passive:
                    raise OSError(_ETIMEDOUT)  # no answer
                return None
            await clock.sleep_ms(_POLL_MS)
            waited += _POLL_MS
        return self.value

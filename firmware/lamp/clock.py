# The only source of time on the node. Everything else asks here for "now" (UTC epoch
# seconds, 1970-based on every port) and for monotonic milliseconds, and sleeps through
# here, so the sim can warp time (a night in seconds) and tests can step it by hand.
import time

try:
    import asyncio
except ImportError:  # CPython importing the module for its pure helpers
    asyncio = None  # type: ignore[assignment]

# Embedded ports count from 2000-01-01 (MicroPython docs, time module); keep 1970 inside.
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


def _ticks():
    return time.ticks_ms()


class Clock:
    def __init__(self, warp=1, start=None, manual=False):
        if warp < 1:
            raise ValueError("warp must be >= 1")
        self.warp = warp
        self.manual = manual
        self._last = _ticks()
        self._mono = 0  # warped monotonic ms since setup; accumulated so ticks may wrap
        if start is None:
            # The port's RTC: on the pole unset until NTP or the external RTC sets it.
            start = int(time.time()) + _EPOCH_OFFSET
            self.valid = time.gmtime()[0] >= 2024
        else:
            self.valid = True
        self._base = start  # UTC seconds at _mono == 0

    def _update(self):
        if self.manual:
            return
        now = _ticks()
        self._mono += time.ticks_diff(now, self._last) * self.warp
        self._last = now

    def mono_ms(self):
        self._update()
        return self._mono

    def now(self):
        self._update()
        return self._base + self._mono // 1000

    def set_time(self, utc):
        # From NTP or an RTC chip: the wall clock jumps, monotonic time does not.
        self._update()
        self._base = int(utc) - self._mono // 1000
        self.valid = True

    def advance_ms(self, ms):
        # Manual clocks only: tests step time explicitly.
        self._mono += ms

    async def sleep_ms(self, ms):
        if self.manual:
            self._mono += ms
            await asyncio.sleep_ms(0)
        else:
            await asyncio.sleep_ms(ms // self.warp)


_clock = Clock()


def setup(warp=1, start=None, manual=False):
    global _clock
    _clock = Clock(warp, start, manual)
    return _clock


def get():
    return _clock


def now():
    return _clock.now()


def mono_ms():
    return _clock.mono_ms()


def sleep_ms(ms):
    return _clock.sleep_ms(ms)


def valid():
    return _clock.valid


def iso(utc=None):
    # "2026-11-25T17:04:05Z"
    if utc is None:
        utc = _clock.now()
    t = time.gmtime(utc - _EPOCH_OFFSET)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]

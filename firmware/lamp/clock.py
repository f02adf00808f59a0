# The only source of time on the node. Everything else asks here for "now" (UTC epoch
# seconds, 1970-based on every port) and for monotonic milliseconds, and sleeps through
# here, so the sim can warp time (a night in seconds) and tests can step it by hand.
# At warp (the sim), node time moves only when a task's sleep or wait here ends: to the
# earliest deadline due, never ahead of `warp` times the host's time. So it never passes
# a deadline whose task has not run yet, and what the node computes costs no node time:
# a busy or stalled host slows node time down, but the node acts at the same node times
# however fast the host runs. Warp 1 (the pole) is plain real time.
# It also owns local time (one POSIX TZ zone, lamp.tz), and the "valid" flag: whether
# the wall clock can be trusted (set by NTP, a plausible external RTC read, or kept
# across a soft reset), which the schedule needs to choose clock time over photocell.
import time

from lamp.tz import civil, days_from_civil  # noqa: F401 -- re-exported: the calendar

try:
    import asyncio
except ImportError:  # CPython importing the module for its pure helpers
    asyncio = None  # type: ignore[assignment]

# Embedded ports count from 2000-01-01 (MicroPython docs, time module); keep 1970 inside.
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0
# A wall clock before 2024-01-01 or from 2100 on is a chip that lost power or garbage.
_PLAUSIBLE_FROM = 1704067200
_PLAUSIBLE_UNTIL = 4102444800
# RTC slow memory survives a soft/WDT reset and deep sleep on the ESP32, not a power
# cut, and so does the port's RTC; clock owns its first 8 bytes: tag + UTC when set.
_MARK = b"LTC1"


def _cpython_ms():
    return getattr(time, "monotonic_ns")() // 1000000


def _plain_diff(a, b):
    return a - b


# MicroPython's wrapping millisecond ticks; CPython (the controller imports this module
# for civil time and for previews) has no ticks, only monotonic_ns and asyncio.sleep.
_ticks = getattr(time, "ticks_ms", None) or _cpython_ms
_ticks_diff = getattr(time, "ticks_diff", None) or _plain_diff


def _sleep_ms(ms):
    f = getattr(asyncio, "sleep_ms", None)
    return f(ms) if f is not None else asyncio.sleep(ms / 1000)


class Clock:
    def __init__(self, warp=1, start=None, manual=False):
        if warp < 1:
            raise ValueError("warp must be >= 1")
        self.warp = warp
        self.manual = manual
        self._last = _ticks()
        self._mono = 0  # warped monotonic ms since setup; accumulated so ticks may wrap
        # At warp only: the deadlines (mono ms) that tasks sleep or wait for, and how far
        # `warp` times the host's time since the first wait would have taken node time.
        self._due = [] if warp > 1 and not manual else None  # type: list | None
        self._host = None
        if start is None:
            # The port's RTC: on the pole unset until NTP or the external RTC sets it.
            start = int(time.time()) + _EPOCH_OFFSET
            self.valid = time.gmtime()[0] >= 2024
            self.source = "port" if self.valid else None
        else:
            self.valid = True
            self.source = "set"
        self._base = start  # UTC seconds at _mono == 0

    def _update(self):
        if self.manual or self._due is not None:
            return  # at warp, node time moves in _until only
        now = _ticks()
        self._mono += _ticks_diff(now, self._last) * self.warp
        self._last = now

    def mono_ms(self):
        self._update()
        return self._mono

    def now(self):
        self._update()
        return self._base + self._mono // 1000

    def set_time(self, utc, source="set"):
        # From NTP or an RTC chip: the wall clock jumps, monotonic time does not.
        self._update()
        self._base = int(utc) - self._mono // 1000
        self.valid = True
        self.source = source

    def advance_ms(self, ms):
        # Manual clocks only: tests step time explicitly.
        self._mono += ms

    async def sleep_ms(self, ms):
        if self.manual:
            self._mono += ms
            await _sleep_ms(0)
        elif ms <= 0:
            await _sleep_ms(0)
        elif self._due is None:
            await _sleep_ms(ms)
        else:
            # At least a real millisecond (`warp` ms of node time): at a high warp a 100 ms
            # sampling loop would otherwise hold node time to 100 ms per wake-up.
            await self._until(self._due, self._mono + max(ms, self.warp), None)

    async def wait_ms(self, event, ms):
        # Wait for `event` at most `ms` (node time); True if it was set. A manual clock
        # does not wait: it steps `ms` unless the event is already set.
        if event.is_set():
            return True
        if self.manual:
            self._mono += ms
            await _sleep_ms(0)
            return event.is_set()
        if self._due is not None:
            # To the millisecond of node time: the lighting loop's steps.
            return await self._until(self._due, self._mono + max(ms, 1), event)
        try:
            await asyncio.wait_for_ms(event.wait(), ms)
            return True
        except asyncio.TimeoutError:
            return False

    def _host_ms(self):
        # At warp: `warp` times the host's time since the first wait; node time never
        # runs ahead of it.
        now = _ticks()
        self._host += _ticks_diff(now, self._last) * self.warp
        self._last = now
        return self._host

    async def _until(self, dues, due, event):
        # At warp: until node time reaches `due` (False) or `event` is set (True). `dues`
        # is self._due, with `due` in it meanwhile. Node time moves only here, when a
        # task resumes from its sleep: to the earliest deadline due, as far as the host's
        # time allows. Each round sleeps at least a host millisecond (no task spins):
        # until the host's time allows `due` (rounded up) or, when an earlier deadline
        # holds node time, for that deadline's task to run.
        if self._host is None:  # the first wait: the boot before it took no node time
            self._last = _ticks()
            self._host = self._mono
        dues.append(due)
        try:
            while True:
                ms = max(1, -((self._host_ms() - due) // self.warp))
                if event is None:
                    await _sleep_ms(ms)
                else:
                    try:
                        await asyncio.wait_for_ms(event.wait(), ms)
                        return True  # at the node time of whoever set it
                    except asyncio.TimeoutError:
                        pass
                self._mono = min(self._host_ms(), min(dues))
                if self._mono >= due:
                    return False
        finally:
            dues.remove(due)  # also when the task is cancelled (a dimmer fade)


_clock = Clock()
_zone = None  # lamp.tz.Zone; None: local time is UTC
_hw = None  # the hal, for RTC memory; set by boot()
_chip = None  # external RTC driver (lamp.rtc), written on every set_time()
# Called after every set_time() (NTP, a command): the lighting loop re-evaluates at once,
# so a corrected clock means the right level now, not at the next step.
_on_set = []  # type: list


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


def wait_ms(event, ms):
    return _clock.wait_ms(event, ms)


def valid():
    return _clock.valid


def source():
    # Where the wall clock came from: "ntp", "rtc", "mem", "port", "set" or None.
    return _clock.source


def plausible(utc):
    return utc is not None and _PLAUSIBLE_FROM <= utc < _PLAUSIBLE_UNTIL


def boot(hw, chip=None, trust_port=False):
    # Decide once at boot whether the wall clock can be trusted, best source first:
    # 0. trust_port (the sim: its port clock is the host's, NTP-disciplined, or the time
    #    the sim was started at): keep it and bring the chip and the mark up to date;
    # 1. RTC memory says the clock was set before a soft reset (the port RTC kept it);
    # 2. the external RTC chip reads a plausible time (and does not flag power loss).
    # Otherwise the clock is invalid until NTP. Returns the source used, or None.
    global _hw, _chip
    _hw, _chip = hw, chip
    now = _clock.now()
    if trust_port and _clock.valid and plausible(now):
        src = _clock.source
        set_time(now, src)
        return src
    mem = hw.rtc_memory() or b""
    if len(mem) >= 8 and mem[:4] == _MARK and plausible(now):
        if int.from_bytes(mem[4:8], "big") <= now:  # the port clock did not run backwards
            _clock.source = "mem"
            _clock.valid = True
            return "mem"
    if chip is not None:
        try:
            t = chip.read()
        except OSError:  # chip missing or bus fault (ENODEV 19): no time from it
            t = None
        if plausible(t):
            _clock.set_time(t, "rtc")
            _mark(t)
            return "rtc"
    _clock.valid = False
    _clock.source = None
    return None


def _mark(utc):
    if _hw is not None:
        mem = _hw.rtc_memory() or b""
        _hw.rtc_memory(_MARK + int(utc).to_bytes(4, "big") + mem[8:])


def set_time(utc, source="ntp"):
    # Set the wall clock from a trusted source; also keep the external RTC chip and the
    # RTC-memory mark up to date, so the next boot has time before the network is up.
    # Returns False if the chip could not be written (the clock itself is set).
    _clock.set_time(utc, source)
    _mark(utc)
    ok = True
    if _chip is not None and source != "rtc":
        try:
            _chip.write(utc)
        except OSError:
            ok = False
    for fn in _on_set:
        fn()
    return ok


def on_set(fn):
    # Call fn() after every set_time().
    if fn not in _on_set:
        _on_set.append(fn)


def set_tz(zone):
    global _zone
    _zone = zone


def tz():
    return _zone


def offset(utc=None):
    # Seconds east of UTC of local time at `utc` (default now).
    if _zone is None:
        return 0
    return _zone.offset(_clock.now() if utc is None else utc)


def local(utc=None):
    # Local wall-clock epoch seconds (feed them to civil() for the date and hour).
    if utc is None:
        utc = _clock.now()
    return utc + offset(utc)


def iso(utc=None):
    # "2026-11-25T17:04:05Z"
    if utc is None:
        utc = _clock.now()
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % civil(utc)[:6]


def local_iso(utc=None):
    # "2026-11-25T17:04:05+01:00" (ISO 8601 with the UTC offset of that instant)
    if utc is None:
        utc = _clock.now()
    off = offset(utc)
    t = civil(utc + off)
    sign = "-" if off < 0 else "+"
    off = abs(off) // 60
    return "%04d-%02d-%02dT%02d:%02d:%02d%s%02d:%02d" % (
        t[0],
        t[1],
        t[2],
        t[3],
        t[4],
        t[5],
        sign,
        off // 60,
        off % 60,
    )

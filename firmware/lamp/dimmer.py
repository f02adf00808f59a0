# Lamp level (integer percent) to LED-driver PWM duty through a perceptual curve: fades,
# the driver's min/max, 1-10 V inversion, the relay that cuts the driver's standby power
# at 0 %, and constant-light-output (CLO) compensation. docs/dimming.md has the formulas.
try:
    import asyncio
except ImportError:  # CPython imports this module for cie_duty only
    asyncio = None  # type: ignore[assignment]
from array import array

from lamp.hal.base import DUTY_MAX

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


# 20 ms per fade step = 50 updates/s: above the ~ 40 Hz a viewer can still resolve as
# steps in a slow ramp (IEEE 1789-2015 treats modulation above ~ 90 Hz as flicker-free;
# the PWM carrier itself runs at the board's pwm.freq).
_TICK_MS = const(20)
_CENTI = const(100)  # fade position in 1/100 % of level

# key: (default, lo, hi) for numbers, or (default, allowed strings).
SPEC = {
    "fade_rate_pct_s": (20, 1, 100),  # level %/s: 0 -> 100 % in 5 s by default
    "min_level": (1, 1, 50),  # the driver's lowest stable level (datasheet)
    "max_level": (100, 1, 100),
    "output": ("pwm", ("pwm", "1-10v-inverted")),
    "clo_start_factor": (1.0, 0.5, 1.0),  # 1.0 = CLO off
    "rated_life_h": (100000, 1000, 200000),
}


def config(values=None):
    from lamp.check import ConfigError, checked  # at boot only: unloaded after

    cfg = checked("dimmer", SPEC, values)
    if cfg["max_level"] < cfg["min_level"]:
        raise ConfigError("dimmer: max_level: below min_level %d" % cfg["min_level"])
    return cfg


def lightness_y(level):
    # CIE 1931 lightness: a level is perceived lightness L* (0..100); the light output
    # needed is Y = ((L* + 16) / 116) ** 3 above L* = 8, else L* / 903.3 (CIE 15:2004).
    if level <= 0:
        return 0.0
    if level >= 100:
        return 1.0
    return ((level + 16) / 116) ** 3 if level > 8 else level / 903.3


def cie_steps(level, bits, factor=1.0):
    # Y (times the CLO factor) quantised at the board's PWM resolution: 0..2**bits - 1.
    top = (1 << bits) - 1
    return int(lightness_y(level) * factor * top + 0.5)


def cie_duty(level, bits):
    top = (1 << bits) - 1
    return cie_steps(level, bits) * DUTY_MAX // top


def clo_factor(cfg, burn_h):
    # CLO: an LED module loses flux with age (lumen maintenance, IES LM-80 / TM-21), so a
    # new one is under-driven by clo_start_factor and the factor rises linearly to 1.0 at
    # rated_life_h. Returned in permille: an integer, so a change is cheap to detect.
    f0 = int(cfg["clo_start_factor"] * 1000 + 0.5)
    life = cfg["rated_life_h"]
    h = min(max(int(burn_h), 0), life)
    return f0 + (1000 - f0) * h // life


class Dimmer:
    def __init__(self, hal, on_change=None, cfg=None, hours=None):
        # hours: a callable giving burn hours (Energy.burn_h) for CLO; None = new lamp.
        # clock is imported here, not at the top: CPython imports this module for the
        # curve alone, and lamp.clock reads the port's ticks when imported.
        from lamp import clock

        self._clock = clock
        self.hal = hal
        self.cfg = config(cfg)
        self.bits = hal.board["pwm"]["bits"]
        self._top = (1 << self.bits) - 1
        self._inv = self.cfg["output"] == "1-10v-inverted"
        self.on_change = on_change
        self.hours = hours
        self.level = None  # the target level as reported; None until the first set
        self.reason = None
        self.steps = 0  # PWM steps last written (0..top), what the driver is given
        self._table = array("H", bytes(202))  # steps at each integer level, 0..100
        self.clo = -1
        self._pos = 0  # where the fade is, in 1/100 %
        self._p0 = 0  # the fade's start position and time: the ramp is exact in time
        self._t0 = 0
        self._goal = 0
        self._end = 0  # where the ramp stops: the goal, or min_level on the way to off
        self._rate = 0  # 1/100 % per second
        self._task = None
        self._gen = 0  # bumped when a fade task is cancelled, so its cleanup is ignored
        self._refresh_clo()

    def _refresh_clo(self):
        # The table is rebuilt only when the CLO factor moves by 1 permille (~ every
        # 500 burn hours), so the 50 Hz fade path is integer lookups only.
        clo = clo_factor(self.cfg, self.hours() if self.hours else 0)
        if clo == self.clo:
            return False
        self.clo = clo
        f = clo / 1000
        for i in range(101):
            self._table[i] = cie_steps(i, self.bits, f)
        return True

    def _steps_at(self, pos):
        # Perceptual interpolation: the position moves linearly in L*; between two whole
        # levels the curve is taken as linear (error < 6e-5 of full light, below one
        # 13-bit step), so the ramp is monotonic and lands exactly on the curve.
        i = pos // _CENTI
        if i >= 100:
            return self._table[100]
        a = self._table[i]
        return a + (self._table[i + 1] - a) * (pos - i * _CENTI) // _CENTI

    def _write(self, steps):
        self.steps = steps
        duty = steps * DUTY_MAX // self._top
        # 1-10 V through an inverting transistor stage: full PWM pulls the control line
        # to 1 V (the driver's minimum), no PWM leaves it at 10 V (full light).
        self.hal.set_duty(DUTY_MAX - duty if self._inv else duty)

    def output(self):
        # Light output asked of the driver, 1/10000 of full (0 when the relay is open):
        # what the energy model and the fault detector compare against.
        if not self.hal.relay_on:
            return 0
        return self.steps * 10000 // self._top

    def _effective(self, level):
        level = int(level)
        if not 0 <= level <= 100:
            raise ValueError("level %d outside 0..100" % level)
        # Below the driver's minimum an LED driver flickers or drops out: off instead.
        if level < self.cfg["min_level"]:
            return 0
        return min(level, self.cfg["max_level"])

    def set(self, level, reason, fade_s=None):
        # fade_s None: the configured rate; 0: jump. The first level after boot jumps: the
        # lamp must light within a second of power-on (docs/firmware.md).
        level = self._effective(level)
        if level == self.level:
            self.reason = reason  # the same light for another reason: nothing to drive
            return
        first = self.level is None
        self.level = level
        self.reason = reason
        goal = level * _CENTI
        self._refresh_clo()
        if first or fade_s == 0:
            self._jump(goal)
        else:
            # Retarget from where the fade is now: the ramp restarts at the current point.
            # Sub-minimum levels are never driven: a fade up starts at min_level, a fade
            # to off ends there and then switches off.
            lo = self.cfg["min_level"] * _CENTI
            if goal > 0 and self._pos < lo:
                self._pos = lo
            self._p0 = self._pos
            self._end = goal if goal > 0 else min(lo, self._pos)
            if fade_s is None:
                self._rate = self.cfg["fade_rate_pct_s"] * _CENTI
            else:  # the whole way in fade_s seconds, from where the fade is now
                self._rate = max(abs(self._end - self._pos) * 1000 // int(fade_s * 1000), 1)
            self._t0 = self._clock.mono_ms()
            self._goal = goal
            if goal > 0:
                self.hal.set_relay(True)  # relay before light (the duty is still 0)
            if self._task is None:
                self._task = asyncio.create_task(self._fade(self._gen))
        if self.on_change is not None:
            self.on_change(level, reason)

    def set_now(self, level, reason):
        self.set(level, reason, 0)

    def _jump(self, goal):
        if self._task is not None:
            self._gen += 1
            self._task.cancel()
            self._task = None
        self._goal = goal
        self._pos = goal
        if goal > 0:
            self.hal.set_relay(True)
        self._write(self._table[goal // _CENTI])
        if goal == 0:
            self.hal.set_relay(False)  # only once the driver is dark

    async def _fade(self, gen):
        try:
            while True:
                dt = self._clock.mono_ms() - self._t0
                span = self._end - self._p0
                move = self._rate * dt // 1000
                done = move >= abs(span)
                if done:
                    pos = self._goal  # the end, or straight from min_level to off
                else:
                    pos = self._p0 + (move if span > 0 else -move)
                # Written every tick, moved or not: >= 50 updates/s while fading.
                self._pos = pos
                self._write(self._steps_at(pos))
                if done:
                    break
                await self._clock.sleep_ms(_TICK_MS)
        finally:
            if gen == self._gen:
                self._task = None
        if self._goal == 0:
            self.hal.set_relay(False)  # standby power cut only after the duty is 0

    def fading(self):
        return self._task is not None

    def status(self):
        return {"level": self.level, "reason": self.reason, "clo": self.clo, "steps": self.steps}

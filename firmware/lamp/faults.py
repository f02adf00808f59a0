# Lamp fault detection from the HAL's feedback inputs, named as TALQ 2.7.1
# LampMonitorFunction events (fLampMonitorEvents). Each fault is debounced over several
# samples and reported once when it becomes active and once when it clears.
# docs/energy.md has the definitions.
from lamp import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_SAMPLE_MS = const(1000)
# TALQ names, in the order of the counters below.
NAMES = ("supplyLoss", "relayFailure", "lampFailure", "lampUnexpectedOn", "cyclingFailure")
_SUPPLY = const(0)
_RELAY = const(1)
_LAMP = const(2)
_UNEXPECTED = const(3)
_CYCLING = const(4)

SPEC = {
    # An LED driver takes up to ~ 1 s to start after the relay closes, and a relay
    # ~ 20 ms to settle: a few 1 s samples ride over both.
    "fault_debounce": (5, 2, 60),
    "cycling_count": (3, 2, 20),  # lamp dropouts within the window that make a cycler
    "cycling_window_s": (600, 60, 3600),
}


class Faults:
    def __init__(self, hal, on_event, cfg=None, output=None):
        # on_event(name, active, detail); output: a callable giving the light output in
        # 1/10000 (Dimmer.output), by default derived from the relay and the PWM duty.
        self.hal = hal
        from lamp.check import checked  # at boot only: unloaded after

        self.cfg = checked("faults", SPEC, cfg)
        self.on_event = on_event
        self.output = output or self._duty_output
        self._count = bytearray(5)  # consecutive samples disagreeing with the state
        self.active = 0  # bit per fault in NAMES
        n = self.cfg["cycling_count"]
        self._drops = [0] * n  # ring of dropout times (mono ms)
        self._ndrops = 0
        self._i = 0
        self._was_lit = None

    def _duty_output(self):
        return 1 if self.hal.relay_on and self.hal.duty > 0 else 0

    def _cycling(self, want, lit, now):
        # A dropout: the lamp went dark by itself while it should be on.
        if want and self._was_lit and lit is False:
            self._drops[self._i] = now
            self._i = (self._i + 1) % len(self._drops)
            self._ndrops = min(self._ndrops + 1, len(self._drops))
        self._was_lit = lit if want else None
        if self._ndrops < len(self._drops):
            return False
        # The ring is full: the oldest of the last N dropouts is at _i.
        return now - self._drops[self._i] <= self.cfg["cycling_window_s"] * 1000

    def check(self):
        # One sample of every fault condition; None inputs (not fitted) never raise.
        hal = self.hal
        now = clock.mono_ms()
        mains = hal.mains_ok()
        relay = hal.relay_sense()
        lit = hal.lamp_sense()
        want = self.output() > 0
        lost = mains is False
        if lost:
            self._was_lit = None  # the dark of a supply loss is not a dropout
        # With the supply gone everything is dark: only supplyLoss is meaningful.
        relay_bad = not lost and relay is not None and relay != hal.relay_on
        conds = (
            lost,
            relay_bad,
            # A relay stuck open explains the dark lamp: report the relay, not the lamp.
            not lost and not relay_bad and want and lit is False,
            not lost and not want and lit is True,
            not lost and lit is not None and self._cycling(want, lit, now),
        )
        for i in range(5):
            on = bool(self.active & (1 << i))
            if conds[i] == on:
                self._count[i] = 0
                continue
            self._count[i] += 1
            if self._count[i] >= self.cfg["fault_debounce"]:
                self._count[i] = 0
                self.active ^= 1 << i
                self.on_event(
                    NAMES[i],
                    not on,
                    {"relay_cmd": hal.relay_on, "relay": relay, "lamp": lit, "mains": mains},
                )

    async def run(self):
        while True:
            await clock.sleep_ms(_SAMPLE_MS)
            self.check()

    def status(self):
        return [NAMES[i] for i in range(5) if self.active & (1 << i)]

# Burn hours and energy of the lamp: modelled from the rated power over the dimming curve,
# or measured from an S0 meter; counters kept in integers and persisted with bounded flash
# writes so they survive reboots. Names follow TALQ 2.7.1 LampMonitorFunction
# (operatingHours, activeEnergy, activePower, switchOnCounter). docs/energy.md.
import json

from lamp import clock, log, write_json_atomic

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_TAG = "energy"
_SAMPLE_MS = const(1000)
_MWS_PER_MWH = const(3600000)  # mW * ms in one mWh
_S0_WINDOW_MS = const(60000)  # S0 power is averaged over a minute: 1 pulse = 1 Wh typ.
_FILE_VERSION = 1

SPEC = {
    "rated_power_w": (50, 1, 1000),  # input power at 100 % light (driver datasheet)
    "standby_power_w": (0.5, 0.0, 10.0),  # relay closed, 0 % (EU 2019/2020: <= 0.5 W)
    "driver_floor_pct": (8, 0, 50),  # input power at the lowest light, % of rated
    "energy_source": ("model", ("model", "s0")),
    "s0_imp_kwh": (1000, 1, 100000),  # meter constant printed on the S0 meter
    "save_min": (60, 5, 1440),  # flash wear: at most one write per this many minutes
}


def config(values=None, board=None):
    from lamp.check import ConfigError, checked  # at boot only: unloaded after

    cfg = checked("energy", SPEC, values)
    if cfg["energy_source"] == "s0" and board is not None and not board.get("s0"):
        raise ConfigError("energy: energy_source: s0, but board %s has no s0 input" % board["name"])
    return cfg


def model_mw(cfg, relay_on, light):
    # Input power (mW) for a light output `light` in 1/10000 of full: linear in Y above the
    # driver's floor (an LED's flux is close to linear in current and a driver's losses do
    # not fall to zero at low load), the standby draw when the relay is closed and dark.
    if not relay_on:
        return 0
    if light <= 0:
        return int(cfg["standby_power_w"] * 1000)
    rated = cfg["rated_power_w"] * 1000
    floor = rated * cfg["driver_floor_pct"] // 100
    return floor + (rated - floor) // 10 * light // 1000


class Energy:
    def __init__(self, hal, cfg=None, path="energy.json", output=None):
        # output: a callable giving the light output in 1/10000 (Dimmer.output); by
        # default derived from the PWM duty (plain PWM output only).
        self.hal = hal
        self.cfg = config(cfg, hal.board)
        self.path = path
        self.output = output or self._duty_output
        self.s0 = self.cfg["energy_source"] == "s0"
        self.burn_s = 0
        self.mwh = 0
        self.switch_on = 0
        self.power_mw = 0
        self._burn_ms = 0  # remainders below one count, so no rounding drift
        self._mws = 0
        self._lit = False
        self._t = clock.mono_ms()
        self._saved_t = self._t
        self._saved = None
        self._s0_last = hal.s0_count()
        self._s0_rem = 0
        self._pw_n = self._s0_last
        self._pw_t = self._t
        self.load()

    def _duty_output(self):
        if not self.hal.relay_on:
            return 0
        return self.hal.duty * 10000 // 65535

    def burn_h(self):
        return self.burn_s // 3600

    def load(self):
        # A missing or corrupt file starts the counters from zero: the lamp must run.
        try:
            with open(self.path) as f:
                data = json.load(f)
            vals = [data[k] for k in ("burn_s", "mwh", "switch_on")]
            if data.get("v") != _FILE_VERSION or not all(
                isinstance(v, int) and v >= 0 for v in vals
            ):
                raise ValueError("bad counters")
        except OSError:
            log.warn(_TAG, "no %s, counters start from zero", self.path)
            return
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log.warn(_TAG, "%s unreadable (%s), counters start from zero", self.path, e)
            return
        self.burn_s, self.mwh, self.switch_on = vals
        self._saved = tuple(vals)

    def update(self):
        # Close the interval since the last call at the power then in effect, then take
        # the new state. Called every second by run(); call it on a level change too for
        # an exact split.
        now = clock.mono_ms()
        dt = now - self._t
        self._t = now
        if dt > 0:
            if self._lit:
                self._burn_ms += dt
                self.burn_s += self._burn_ms // 1000
                self._burn_ms %= 1000
            if not self.s0:
                self._mws += self.power_mw * dt
                self.mwh += self._mws // _MWS_PER_MWH
                self._mws %= _MWS_PER_MWH
        light = self.output()
        lit = light > 0
        if lit and not self._lit:
            self.switch_on += 1
        self._lit = lit
        if self.s0:
            self._update_s0(now)
        else:
            self.power_mw = model_mw(self.cfg, self.hal.relay_on, light)

    def _update_s0(self, now):
        n = self.hal.s0_count()
        imp = self.cfg["s0_imp_kwh"]
        # 1 impulse = 1e6 / imp mWh; the remainder carries to the next impulse.
        self._s0_rem += (n - self._s0_last) * 1000000
        self._s0_last = n
        self.mwh += self._s0_rem // imp
        self._s0_rem %= imp
        dt = now - self._pw_t
        if dt >= _S0_WINDOW_MS:
            self.power_mw = (n - self._pw_n) * 1000000 * _MWS_PER_MWH // imp // dt
            self._pw_n = n
            self._pw_t = now

    def save(self):
        # Replaced whole (lamp.write_json_atomic): a power cut mid-write leaves the
        # previous file. Formatted by hand: no dict to build for four numbers.
        self.update()
        vals = (self.burn_s, self.mwh, self.switch_on)
        self._saved_t = self._t
        if vals == self._saved:
            return
        try:
            write_json_atomic(
                self.path,
                '{"v": %d, "burn_s": %d, "mwh": %d, "switch_on": %d}' % ((_FILE_VERSION,) + vals),
            )
        except OSError as e:
            log.error(_TAG, "cannot save %s: %s", self.path, e)
            return
        self._saved = vals

    async def run(self):
        period = self.cfg["save_min"] * 60000
        while True:
            await clock.sleep_ms(_SAMPLE_MS)
            self.update()
            if self._t - self._saved_t >= period:
                self.save()

    def status(self):
        return {
            "burn_h": self.burn_s // 36 / 100,
            "kwh": self.mwh / 1000000,
            "power_w": self.power_mw / 1000,
            "switch_on": self.switch_on,
            "source": self.cfg["energy_source"],
        }

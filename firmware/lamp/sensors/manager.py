# Runs the node's sensors: polls each driver, keeps windowed aggregates (min, mean, max,
# count) per field for the telemetry period, and reports a sensor fault once when a
# sensor fails (no answer, bad data, out of range, stale, stuck) and once when it
# recovers. A failing or missing sensor never stops the lamp or the other sensors: each
# poll is caught on its own, and a sensor that failed to start is retried with backoff.
from lamp import clock, log

SPEC = {
    "poll_s": (5, 1, 3600),  # how often each sensor is read
    "fail_n": (3, 1, 100),  # consecutive bad polls that make a fault (one glitch does not)
    "stale_s": (120, 10, 86400),  # no good sample for this long: stale
    # Identical readings in a row that make a stuck sensor (0: off); an hour at 5 s. A
    # reading resting at the bottom of every field's range (darkness, clean air) is a
    # state of the world, not a stuck chip, and does not count.
    "stuck_n": (720, 0, 100000),
    # The sensors in use, a subset of the board's list (None: all the board names).
    "fitted": (None, list),
    "pm_mode": ("active", ("active", "passive")),  # particulate sensor reporting mode
}
_MIN, _MAX, _SUM, _N = 0, 1, 2, 3
_RETRY_MAX_S = 600


class Sensor:
    # One driver and its bookkeeping; `agg` holds [min, max, sum, count] per field.
    def __init__(self, name, driver):
        self.name = name
        self.drv = driver
        self.fields = driver.FIELDS
        self.agg = [[None, None, 0, 0] for _ in driver.FIELDS]  # type: list
        self.started = False
        self.retry_at = 0  # monotonic s: when a failed start is tried again
        self.backoff = 0
        self.bad = 0  # consecutive bad polls
        self.fault = None  # the reason while a fault is active
        self.last_ok = clock.mono_ms() // 1000
        self.last = None  # last good reading (tuple)
        self.same = 0  # identical readings in a row
        # the bottom 5 % of each field's range: readings there never count as stuck
        self.floor = [f[2] + (f[3] - f[2]) // 20 for f in driver.FIELDS]

    def add(self, values):
        for i, v in enumerate(values):
            if v is None:
                continue
            a = self.agg[i]
            a[_MIN] = v if a[_MIN] is None or v < a[_MIN] else a[_MIN]
            a[_MAX] = v if a[_MAX] is None or v > a[_MAX] else a[_MAX]
            a[_SUM] += v
            a[_N] += 1

    def resting(self, values):
        for i, v in enumerate(values):
            if v is not None and v > self.floor[i]:
                return False
        return True

    def check(self, values):
        # -> why the reading is unacceptable, or None
        for i, v in enumerate(values):
            f = self.fields[i]
            if v is not None and not f[2] <= v <= f[3]:
                return "out of range: %s=%d (%d..%d)" % (f[0], v, f[2], f[3])
        return None


def driver(hal, name, passive=False):
    # The driver for a sensor name of lamp.board.SENSOR_BUS on the hal's bus, its module
    # imported only when the sensor is fitted.
    if name == "bme280":
        from lamp.sensors.bme280 import BME280

        return BME280(hal.i2c())
    if name == "bh1750":
        from lamp.sensors.bh1750 import BH1750

        return BH1750(hal.i2c())
    if name == "scd4x":
        from lamp.sensors.scd4x import SCD4x

        return SCD4x(hal.i2c())
    if name == "pms5003":
        from lamp.sensors.pms5003 import PMS5003

        return PMS5003(hal.uart(9600), passive)
    if name == "sds011":
        from lamp.sensors.sds011 import SDS011

        return SDS011(hal.uart(9600), passive)
    raise ValueError("sensors: no driver for %r" % name)


class Sensors:
    def __init__(self, drivers, on_event, cfg=None):
        # drivers: {name: driver instance} (see lamp.sensors for the driver contract), or
        # a hal: the drivers for the sensors its board names (narrowed by cfg "fitted");
        # on_event(name, active, detail) as lamp.faults reports its faults.
        from lamp.check import checked  # at boot only: unloaded after

        self.cfg = c = checked("sensors", SPEC, cfg)
        self.on_event = on_event
        if not isinstance(drivers, dict):
            hal = drivers
            names = c["fitted"] if c["fitted"] is not None else hal.board["sensors"]
            drivers = {}
            for n in names:
                if n not in hal.board["sensors"]:
                    raise ValueError(
                        "config: sensors.fitted: %s is not on board %s" % (n, hal.board["name"])
                    )
                drivers[n] = driver(hal, n, c["pm_mode"] == "passive")
        # Sorted: MicroPython dicts keep no order, and reports should read the same.
        self.sensors = [Sensor(n, drivers[n]) for n in sorted(drivers)]

    def _fail(self, s, why, now_s):
        s.bad += 1
        if s.fault is None and s.bad >= self.cfg["fail_n"]:
            s.fault = why
            log.warn("sensors", "%s: %s", s.name, why)
            self.on_event("sensorFault", True, "%s: %s" % (s.name, why))

    def _ok(self, s, values, now_s):
        s.last_ok = now_s
        s.same = s.same + 1 if values == s.last and not s.resting(values) else 0
        s.last = values
        stuck = self.cfg["stuck_n"]
        if stuck and s.same >= stuck:
            self._fail(s, "stuck: the same reading %d times" % (s.same + 1), now_s)
            return
        s.bad = 0
        s.add(values)
        if s.fault is not None:
            log.info("sensors", "%s: recovered", s.name)
            s.fault = None
            self.on_event("sensorFault", False, "%s: recovered" % s.name)

    async def poll(self, s):
        # One step for one sensor; never raises (except cancellation).
        now_s = clock.mono_ms() // 1000
        try:
            if not s.started:
                if now_s < s.retry_at:
                    return
                await s.drv.start()
                s.started = True
                s.backoff = 0
            values = await s.drv.read()
        except (OSError, ValueError) as e:  # no answer / SensorError (a ValueError)
            if not s.started:  # retry the start later, doubling up to 10 minutes
                s.backoff = min(max(s.backoff * 2, self.cfg["poll_s"]), _RETRY_MAX_S)
                s.retry_at = now_s + s.backoff
            self._fail(s, "%s: %s" % (type(e).__name__, e), now_s)
            if s.fault is not None:
                s.started = False  # a chip that lost power must be probed and set up again
            return
        if values is None:  # no new sample yet: only staleness can count against it
            if now_s - s.last_ok > self.cfg["stale_s"]:
                self._fail(s, "stale: no sample for %d s" % (now_s - s.last_ok), now_s)
            return
        why = s.check(values)
        if why is not None:
            self._fail(s, why, now_s)
        else:
            self._ok(s, values, now_s)

    async def run(self, after=None):
        # Poll every sensor each poll_s; after(): a callback once per round (the node
        # takes the light level for its photocell fallback there).
        while True:
            for s in self.sensors:
                await self.poll(s)
            if after is not None:
                after()
            await clock.sleep_ms(self.cfg["poll_s"] * 1000)

    def latest(self, field):
        # The newest good value of a field from any sensor without a fault (e.g. lux for
        # the photocell fallback), or None.
        for s in self.sensors:
            if s.fault is None and s.last is not None:
                for i, f in enumerate(s.fields):
                    if f[0] == field and s.last[i] is not None:
                        return s.last[i]
        return None

    def window(self, reset=True):
        # {sensor: {"fault": reason|None, field: [min, mean, max, count]}} for the
        # telemetry period (units: units()); the aggregates restart when reset. Lists,
        # not dicts: a snapshot of every sensor stays a few hundred bytes.
        out = {}
        for s in self.sensors:
            d = {"fault": s.fault}
            for i, f in enumerate(s.fields):
                a = s.agg[i]  # type: list
                n = a[_N]
                d[f[0]] = [a[_MIN], (2 * a[_SUM] + n) // (2 * n) if n else None, a[_MAX], n]
                if reset:
                    s.agg[i] = [None, None, 0, 0]
            out[s.name] = d
        return out

    def units(self):
        # {field: unit} of every field of the sensors in use (one entry per field name)
        return {f[0]: f[1] for s in self.sensors for f in s.fields}

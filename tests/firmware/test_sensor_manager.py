# The sensor manager: aggregates per window, one fault event per failure and one per
# recovery, and a failing sensor never stops the others. The drivers here are scripted
# stand-ins for the manager's logic; the real drivers have their own tests.
from fw import raises
from lamp import clock
from lamp.config import ConfigError
from lamp.sensors import SensorError
from lamp.sensors.manager import Sensors


class Scripted:
    # A driver whose start() and read() follow a script: a value tuple, None (no new
    # sample), or an exception instance to raise.
    FIELDS = (("temp_x10", "degC", -400, 850), ("rh_x10", "%", 0, 1000))

    def __init__(self, script, start_errors=0):
        self.script = list(script)
        self.start_errors = start_errors
        self.starts = 0

    async def start(self):
        self.starts += 1
        if self.start_errors:
            self.start_errors -= 1
            raise OSError(19)

    async def read(self):
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        return step


def _manager(drivers, **cfg):
    clock.setup(start=1795600000, manual=True)
    events = []
    m = Sensors(drivers, lambda *e: events.append(e), cfg or None)
    return m, events


async def _polls(m, n, name=None):
    for _ in range(n):
        for s in m.sensors:
            if name is None or s.name == name:
                await m.poll(s)
        clock.get().advance_ms(5000)


async def test_window_aggregates_min_mean_max_count_and_resets():
    m, events = _manager({"bme280": Scripted([(100, 500), (120, None), (140, 600)])})
    await _polls(m, 3)
    w = m.window()
    assert w["bme280"]["temp_x10"] == [100, 120, 140, 3]  # min, mean, max, count
    assert w["bme280"]["rh_x10"] == [500, 550, 600, 2]
    assert m.units() == {"temp_x10": "degC", "rh_x10": "%"}
    assert w["bme280"]["fault"] is None and events == []
    assert m.window()["bme280"]["temp_x10"] == [None, None, None, 0]  # a new window


async def test_one_glitch_is_not_a_fault_but_repeated_failures_are_reported_once():
    bad = SensorError("checksum")
    m, events = _manager({"pms5003": Scripted([(1, 2), bad, (1, 3), bad, bad, bad, bad, (2, 3)])})
    await _polls(m, 8)
    assert events == [
        ("sensorFault", True, "pms5003: SensorError: checksum"),
        ("sensorFault", False, "pms5003: recovered"),
    ]


async def test_out_of_range_and_stuck_readings_are_faults():
    m, events = _manager({"a": Scripted([(900, 10)] * 3 + [(200, 10)])})
    await _polls(m, 4)
    assert events[0] == ("sensorFault", True, "a: out of range: temp_x10=900 (-400..850)")
    assert events[1][1] is False
    m, events = _manager({"b": Scripted([(200, 10)] * 6 + [(201, 10)])}, stuck_n=3)
    await _polls(m, 7)
    assert [e[1] for e in events] == [True, False], events
    assert "stuck" in events[0][2]


async def test_stale_sensor_is_a_fault():
    m, events = _manager({"scd41": Scripted([(100, 10)])}, stale_s=30)
    await _polls(m, 12)  # one sample, then 55 s of "no new data"
    assert [e[1] for e in events] == [True]
    assert "stale" in events[0][2]


async def test_missing_sensor_is_retried_and_never_stops_the_others():
    missing = Scripted([(1, 1)] * 50, start_errors=1000)
    good = Scripted([(150, 400)] * 50)
    m, events = _manager({"bh1750": missing, "bme280": good})
    await _polls(m, 40)
    assert events == [("sensorFault", True, "bh1750: OSError: [Errno 19] ENODEV")]
    assert m.window()["bme280"]["temp_x10"][3] == 40
    assert missing.starts < 15  # backoff: not probed on every poll
    assert m.latest("temp_x10") == 150 and m.latest("lux_x10") is None


async def test_a_recovered_chip_is_set_up_again():
    d = Scripted([OSError(19)] * 3 + [(150, 400)])
    m, events = _manager({"bme280": d})
    await _polls(m, 12)
    assert [e[1] for e in events] == [True, False]
    assert d.starts >= 2  # probed and configured again after the fault


def test_config_errors_name_the_key():
    e = raises(ConfigError, Sensors, {}, print, {"poll_s": 0})
    assert str(e) == "sensors: poll_s: 0 not a number in 1..3600"


async def test_a_reading_resting_at_the_bottom_of_its_range_is_never_stuck():
    # Darkness on a light sensor, clean air on a particulate one: the same low value all
    # night is the world, not a stuck chip. High readings frozen are.
    class Light(Scripted):
        FIELDS = (("lux_x10", "lux", 0, 655350),)

    m, events = _manager({"bh1750": Light([(0,)] * 10 + [(400000,)] * 8)}, stuck_n=3)
    await _polls(m, 10)
    assert events == []
    await _polls(m, 8)  # stuck from the 4th identical reading, a fault after 3 of those
    assert [e[1] for e in events] == [True] and "stuck" in events[0][2]


def test_drivers_come_from_the_board_narrowed_by_the_config():
    from fw import sim_hal

    hal = sim_hal()
    m = Sensors(hal, print)
    assert [s.name for s in m.sensors] == ["bh1750", "bme280", "pms5003", "scd4x"]
    assert type(m.sensors[2].drv).__name__ == "PMS5003" and not m.sensors[2].drv.passive
    m = Sensors(hal, print, {"fitted": ["bme280", "pms5003"], "pm_mode": "passive"})
    assert [s.name for s in m.sensors] == ["bme280", "pms5003"]
    assert m.sensors[1].drv.passive
    e = raises(ValueError, Sensors, hal, print, {"fitted": ["sds011"]})
    assert str(e) == "config: sensors.fitted: sds011 is not on board sim"

# The whole node with every sensor of the sim board: each fault a sensor model can
# inject is reported once, cleared once on repair, never touches the lamp (which keeps
# following its schedule) or the other sensors; the photocell fallback takes its light
# from the BH1750; the telemetry snapshot carries the readings with their units.
from fw import RUN, sim_hal
from lamp import app, clock, unload

T0 = 1795624200  # 2026-11-25T16:30:00Z: after sunset in Greenwich, 100 % by the schedule
SCHEDULE = {
    "version": 1,
    "id": "t",
    "profiles": {"p": [{"at": "sunset", "level": 100}, {"at": "sunrise", "level": 0}]},
    "calendar": [{"profile": "p"}],
    "photocell": {"on_lux": 50, "off_lux": 200, "level": 60},
}


def _node(**sensors):
    from lamp import config

    cfg = config.build(
        {"log_level": "error", "sensors": dict({"stuck_n": 8, "stale_s": 30}, **sensors)}
    )
    del config
    unload("config")
    clock.setup(start=T0, manual=True)
    node = app.Node(sim_hal(devices=True), cfg, root="/tmp/lanterna-test-%d-sensors-" % RUN)
    node.setup_site()
    return node


async def _rounds(node, n, events=None, until=None):
    # n sensor rounds of 5 s; the lamp is evaluated after each. -> rounds done
    m = node.sensors
    for i in range(n):
        for s in m.sensors:
            await m.poll(s)
        node._sensed()
        clock.get().advance_ms(5000)
        node.evaluate()
        if until is not None and len(events) >= until:
            return i + 1
    return n


# (sensor, fault, detected): what each model can inject and whether the node must see it.
# A BH1750 has no checksum and any 16-bit count is a plausible light level, so "checksum"
# changes nothing and "garbage" cannot be told from light; noise on a UART line before a
# good frame is resynchronised away, by design. Everything else is a fault.
CASES = (
    ("bme280", "nack", True),
    ("bme280", "disconnect", True),
    ("bme280", "checksum", True),
    ("bme280", "stuck", True),
    ("bh1750", "nack", True),
    ("bh1750", "disconnect", True),
    ("bh1750", "stuck", True),
    ("scd4x", "nack", True),
    ("scd4x", "disconnect", True),
    ("scd4x", "checksum", True),
    ("scd4x", "stuck", True),
    ("scd4x", "garbage", True),
    ("pms5003", "disconnect", True),
    ("pms5003", "checksum", True),
    ("pms5003", "stuck", True),
    ("pms5003", "garbage", False),
    ("pms5003", "partial", False),
)


async def test_every_sensor_fault_is_reported_once_cleared_once_and_never_dims_the_lamp():
    node = _node()
    node.replace_schedule(SCHEDULE)
    events = []
    node.sensors.on_event = lambda *e: events.append(e)
    # Polluted air, so that a frozen particulate reading is above the resting floor.
    node.hal.models["pms5003"].base = 80
    await _rounds(node, 3)
    assert events == [] and node.dimmer.level == 100
    for name, fault, detected in CASES:
        model = node.hal.models[name]
        model.fault = fault
        await _rounds(node, 30, events, until=1)
        if detected:
            assert events == [("sensorFault", True, events[0][2])], (name, fault, events)
            assert events[0][2].startswith(name + ": "), events
        else:
            assert events == [], (name, fault, events)
        # The lamp follows its schedule whatever the sensors do, and the others go on.
        assert node.dimmer.level == 100 and node.dimmer.reason == "schedule", (name, fault)
        for s in node.sensors.sensors:
            if s.name != name:
                assert s.fault is None, (name, fault, s.name, s.fault)
        model.fault = None
        await _rounds(node, 40, events, until=2 if detected else 0)
        if detected:
            assert len(events) == 2 and events[1] == ("sensorFault", False, name + ": recovered")
        assert node.sensors.window()[name]["fault"] is None, (name, fault)
        events.clear()
        await _rounds(node, 2)  # one fault at a time: the next case starts clean


async def test_photocell_fallback_reads_the_light_sensor_while_the_clock_is_not_valid():
    node = _node()
    node.replace_schedule(SCHEDULE)
    clock.get().valid = False  # no NTP, no RTC: the photocell is in charge
    node.hal.lux = 20.0  # dusk: below on_lux
    await _rounds(node, 2)
    assert node.lux == 20
    assert node.dimmer.level == 60 and node.dimmer.reason == "photocell"
    node.hal.lux = 5000.0
    await _rounds(node, 2)
    assert node.dimmer.level == 0 and node.dimmer.reason == "photocell"
    node.hal.models["bh1750"].fault = "nack"  # no light reading: the failsafe lights up
    await _rounds(node, 5)
    assert node.lux is None and node.dimmer.reason == "failsafe" and node.dimmer.level == 100


async def test_telemetry_snapshot_carries_readings_with_units():
    from lamp import telemetry

    node = _node()
    await _rounds(node, 3)
    node.evse.sample()
    snap = telemetry.snapshot(node)
    assert snap["v"] == 1 and snap["level"] == node.dimmer.level
    bme = snap["sensors"]["bme280"]
    lo, mean, hi, n = bme["temp_x10"]
    assert bme["fault"] is None and n == 3 and lo <= mean <= hi and 80 <= mean <= 160
    units = snap["units"]
    assert units["temp_x10"] == "degC" and units["pressure_x10"] == "hPa"
    assert units["rh_x10"] == "%" and units["co2"] == "ppm" and units["lux_x10"] == "lux"
    assert units["pm2_5"] == "ug/m3" and set(snap["sensors"]["pms5003"]) >= {"pm1", "pm10"}
    assert snap["evse"]["present"] and snap["energy"]["kwh"] == 0.0
    assert snap["heap_free"] > 0
    # the window restarted: the next snapshot counts only new samples
    assert telemetry.snapshot(node)["sensors"]["bme280"]["temp_x10"][3] == 0

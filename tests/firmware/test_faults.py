# TALQ LampMonitor faults from the sim's lamp model: each raised once and cleared once.
from fw import raises, sim_hal
from lamp import clock
from lamp.dimmer import Dimmer
from lamp.faults import NAMES, Faults

_START = 1795600000


def _node(level, **cfg):
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    d = Dimmer(hal)
    d.set_now(level, "schedule")
    events = []
    f = Faults(hal, lambda name, active, detail: events.append((name, active)), cfg, d.output)
    return hal, d, f, events


def _samples(f, n):
    for _ in range(n):
        clock.get().advance_ms(1000)
        f.check()


def test_names_are_talq_lamp_monitor_events():
    # TALQ 2.7.1 data model, fLampMonitorEvents.
    assert set(NAMES) == {
        "lampFailure",
        "lampUnexpectedOn",
        "relayFailure",
        "cyclingFailure",
        "supplyLoss",
    }


def test_healthy_lamp_raises_nothing_on_or_off():
    hal, d, f, events = _node(100)
    _samples(f, 30)
    d.set_now(0, "schedule")
    _samples(f, 30)
    d.set_now(40, "schedule")
    _samples(f, 30)
    assert events == [] and f.status() == []


def test_failed_lamp_is_raised_once_and_cleared_once():
    hal, d, f, events = _node(100)
    _samples(f, 10)
    hal.lamp_failed = True
    _samples(f, 4)
    assert events == []  # debounced: 4 samples of 5
    _samples(f, 20)
    assert events == [("lampFailure", True)] and f.status() == ["lampFailure"]
    hal.lamp_failed = False
    _samples(f, 20)
    assert events == [("lampFailure", True), ("lampFailure", False)]


def test_a_single_dark_sample_is_not_a_fault():
    hal, d, f, events = _node(100)
    for _ in range(5):  # a glitch every 11 minutes: no fault, and not a cycler either
        hal.lamp_failed = True
        _samples(f, 1)
        hal.lamp_failed = False
        _samples(f, 660)
    assert events == []


def test_day_burner_is_lamp_unexpected_on():
    hal, d, f, events = _node(0)
    _samples(f, 10)
    hal.day_burner = True
    _samples(f, 20)
    assert events == [("lampUnexpectedOn", True)]
    hal.day_burner = False
    _samples(f, 20)
    assert events == [("lampUnexpectedOn", True), ("lampUnexpectedOn", False)]


def test_welded_relay_is_relay_failure_only():
    hal, d, f, events = _node(100)
    hal.relay_welded = True
    d.set_now(0, "schedule")  # PWM at 0: the driver is energised but dark
    _samples(f, 20)
    assert events == [("relayFailure", True)]
    hal.relay_welded = None
    _samples(f, 20)
    assert events == [("relayFailure", True), ("relayFailure", False)]


def test_relay_stuck_open_is_a_relay_not_a_lamp_failure():
    hal, d, f, events = _node(0)
    hal.relay_welded = False
    d.set_now(80, "schedule")
    _samples(f, 20)
    assert events == [("relayFailure", True)]
    hal.relay_welded = None
    _samples(f, 20)
    assert events == [("relayFailure", True), ("relayFailure", False)]


def test_welded_relay_on_a_1_10_v_driver_also_burns_by_day():
    # A 1-10 V driver only goes dark when its supply is cut.
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    hal.dark_duty = None
    d = Dimmer(hal, cfg={"output": "1-10v-inverted"})
    d.set_now(100, "schedule")
    events = []
    f = Faults(hal, lambda n, a, detail: events.append((n, a)), None, d.output)
    hal.relay_welded = True
    d.set_now(0, "schedule")
    _samples(f, 20)
    assert sorted(events) == [("lampUnexpectedOn", True), ("relayFailure", True)]


def test_supply_loss_is_the_only_fault_while_mains_is_gone():
    hal, d, f, events = _node(100)
    hal.mains = False
    _samples(f, 30)
    assert events == [("supplyLoss", True)]
    hal.mains = True
    _samples(f, 30)
    assert events == [("supplyLoss", True), ("supplyLoss", False)]


def test_a_lamp_cycling_on_and_off_is_a_cycling_failure():
    hal, d, f, events = _node(100)
    _samples(f, 10)
    for _ in range(4):  # dark for 2 s every 10 s: too short for lampFailure
        hal.lamp_failed = True
        _samples(f, 2)
        hal.lamp_failed = False
        _samples(f, 8)
    assert events == [("cyclingFailure", True)]
    _samples(f, 600)  # steady for the whole window
    assert events == [("cyclingFailure", True), ("cyclingFailure", False)]


def test_inputs_not_fitted_raise_nothing():
    hal, d, f, events = _node(100)
    hal.mains_ok = lambda: None
    hal.relay_sense = lambda: None
    hal.lamp_sense = lambda: None
    hal.lamp_failed = True
    hal.mains = False
    _samples(f, 30)
    assert events == []


def test_config_errors_name_the_key():
    hal = sim_hal()
    e = raises(ValueError, Faults, hal, print, {"fault_debounce": 1})
    assert "fault_debounce" in str(e)
    e = raises(ValueError, Faults, hal, print, {"cycling_window_s": 10})
    assert "cycling_window_s" in str(e)

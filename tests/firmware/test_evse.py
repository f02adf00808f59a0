# The EV charge point: IEC 61851-1 pilot states from the simulated pilot voltage, debounced
# with hysteresis, OCPP 1.6 status notifications once per change, S0 energy and sessions.
import asyncio

from fw import raises, sim_hal
from lamp import clock
from lamp.evse import Evse

_START = 1795600000  # 2026-11-25T...Z


def _node(**cfg):
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    events = []
    ev = Evse(hal, lambda name, payload: events.append((name, payload)), cfg)
    return hal, ev, events


def _at(hal, ev, volts, n=3, pulses=0):
    # n samples of the pilot at `volts`, 100 ms apart, `pulses` S0 impulses on each.
    hal.cp_volts = volts
    for _ in range(n):
        clock.get().advance_ms(100)
        hal.pulses += pulses
        ev.sample()


def _statuses(events):
    return [p["status"] for name, p in events if name == "evse_status"]


def _names(events):
    return [name for name, p in events]


def test_every_state_from_its_pilot_voltage():
    hal, ev, events = _node()
    # Nominal levels and the edges of IEC 61851-1's tolerances (+-1 V around nominal).
    for volts, state, status, error in (
        (12.0, "A", "Available", "NoError"),
        (11.0, "A", "Available", "NoError"),
        (9.0, "B", "Preparing", "NoError"),
        (8.0, "B", "Preparing", "NoError"),
        (6.0, "C", "Charging", "NoError"),
        (5.0, "C", "Charging", "NoError"),
        (3.0, "D", "Charging", "NoError"),
        (2.0, "D", "Charging", "NoError"),
        (0.0, "E", "Faulted", "EVCommunicationError"),
        (-1.0, "E", "Faulted", "EVCommunicationError"),
        (-12.0, "F", "Unavailable", "NoError"),
        (-11.0, "F", "Unavailable", "NoError"),
        (13.0, "A", "Available", "NoError"),
    ):
        _at(hal, ev, volts)
        s = ev.status()
        assert (s["state"], s["status"], s["error_code"]) == (state, status, error), (volts, s)
        assert s["present"] is True


def test_nothing_is_reported_before_a_state_is_settled():
    hal, ev, events = _node()
    s = ev.status()
    assert s["state"] is None and s["status"] is None and events == []
    _at(hal, ev, 12.0, n=2)
    assert events == [] and ev.status()["state"] is None
    _at(hal, ev, 12.0, n=1)
    assert _statuses(events) == ["Available"]


def test_levels_between_the_bands_are_invalid_and_faulted():
    hal, ev, events = _node()
    for volts in (-5.0, -9.0, -3.0):
        _at(hal, ev, volts)
        s = ev.status()
        assert (s["state"], s["status"], s["error_code"]) == ("?", "Faulted", "OtherError")
    assert events[0][1]["errorCode"] == "OtherError"
    assert len(events) == 1  # still the same fault
    _at(hal, ev, 12.0)
    assert _statuses(events) == ["Faulted", "Available"]


def test_a_level_wandering_around_a_band_edge_does_not_chatter():
    hal, ev, events = _node()
    _at(hal, ev, 9.0)
    # Around the B/C edge (7.5 V), sample by sample and in runs longer than the debounce.
    for _ in range(20):
        _at(hal, ev, 7.4, n=1)
        _at(hal, ev, 7.6, n=1)
    for _ in range(5):
        _at(hal, ev, 7.35, n=5)
        _at(hal, ev, 7.65, n=5)
    assert ev.status()["state"] == "B" and _statuses(events) == ["Preparing"]
    _at(hal, ev, 7.1)  # past the hysteresis: C
    assert ev.status()["state"] == "C"
    for _ in range(5):
        _at(hal, ev, 7.65, n=5)
        _at(hal, ev, 7.35, n=5)
    assert ev.status()["state"] == "C"
    _at(hal, ev, 7.9)
    assert ev.status()["state"] == "B"
    # Around the A/B edge (10.5 V) and the E/invalid edge (-1.5 V) too.
    _at(hal, ev, 12.0)
    for _ in range(5):
        _at(hal, ev, 10.4, n=4)
        _at(hal, ev, 10.6, n=4)
    _at(hal, ev, 0.0)
    for _ in range(5):
        _at(hal, ev, -1.6, n=4)
        _at(hal, ev, -1.4, n=4)
    assert _statuses(events) == [
        "Preparing",
        "Charging",
        "SuspendedEV",
        "Available",
        "Faulted",
    ]


def test_without_hysteresis_the_plain_bands_decide():
    hal, ev, events = _node(hysteresis_mv=0)
    _at(hal, ev, 9.0)
    _at(hal, ev, 7.4)
    assert ev.status()["state"] == "C"


def test_a_one_sample_glitch_is_ignored():
    hal, ev, events = _node()
    _at(hal, ev, 12.0)
    for volts in (9.0, 6.0, 0.0, -12.0, -5.0):
        _at(hal, ev, volts, n=1)
        _at(hal, ev, 12.0, n=1)
    _at(hal, ev, 9.0, n=2)  # two of three
    _at(hal, ev, 12.0, n=1)
    # A glitch to another state restarts the count of the new one.
    _at(hal, ev, 9.0, n=2)
    _at(hal, ev, 6.0, n=1)
    _at(hal, ev, 9.0, n=2)
    assert _statuses(events) == ["Available"] and ev.status()["state"] == "A"
    _at(hal, ev, 9.0, n=1)
    assert _statuses(events) == ["Available", "Preparing"]


def test_debounce_is_configurable():
    hal, ev, events = _node(debounce=5)
    _at(hal, ev, 9.0, n=4)
    assert events == []
    _at(hal, ev, 9.0, n=1)
    assert ev.status()["state"] == "B"
    hal, ev, events = _node(debounce=1)
    _at(hal, ev, 6.0, n=1)
    assert ev.status()["state"] == "C"


def test_a_board_without_a_pilot_input_has_no_charge_point():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    hal.board = dict(hal.board)
    hal.board["cp_adc"] = None
    events = []
    ev = Evse(hal, lambda n, p: events.append(n))
    for _ in range(10):
        ev.sample()
    s = ev.status()
    assert s["present"] is False and s["state"] is None and s["status"] is None
    assert events == []


async def test_run_ends_at_once_without_a_pilot_input():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    hal.board = dict(hal.board)
    hal.board["cp_adc"] = None
    await Evse(hal, print).run()


async def test_run_samples_the_pilot_every_sample_ms():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    seen = []
    ev = Evse(hal, lambda n, p: seen.append(clock.mono_ms()), {"sample_ms": 200})
    hal.cp_volts = 9.0
    task = asyncio.create_task(ev.run())
    for _ in range(20):
        await asyncio.sleep_ms(0)
    task.cancel()
    # The third sample (debounce 3) settles state B: three periods of 200 ms.
    assert seen == [600] and ev.status()["state"] == "B"


def test_s0_impulses_are_counted_in_integer_energy_with_carry():
    hal, ev, events = _node(s0_imp_kwh=3000)  # 1 impulse = 1/3 Wh
    _at(hal, ev, 12.0)
    for _ in range(3):
        hal.pulses += 1
        _at(hal, ev, 12.0, n=1)
    assert ev.mwh == 1000
    hal.pulses += 4500
    _at(hal, ev, 12.0, n=1)
    assert ev.mwh == 1501000 and ev.status()["total_kwh"] == 1.501


def test_power_is_averaged_over_the_window():
    hal, ev, events = _node(s0_imp_kwh=1000, power_window_s=60)
    # 2 impulses a second at 1 Wh each: 7.2 kW, one 60 s window of 600 samples.
    for _ in range(120):
        _at(hal, ev, 6.0, n=4)
        _at(hal, ev, 6.0, n=1, pulses=1)
    assert ev.status()["power_w"] == 7200
    _at(hal, ev, 6.0, n=600)
    assert ev.status()["power_w"] == 0


def test_a_board_without_s0_counts_no_energy():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    hal.board = dict(hal.board)
    hal.board["s0"] = None
    ev = Evse(hal, print)
    hal.pulses = 1000
    _at(hal, ev, 12.0, n=1)
    assert ev.mwh == 0 and ev.status()["total_kwh"] == 0.0


def test_a_session_runs_from_charging_to_unplug_with_its_energy_and_duration():
    hal, ev, events = _node(s0_imp_kwh=1000)
    _at(hal, ev, 12.0)
    hal.pulses = 500  # energy before the session is not the session's
    _at(hal, ev, 9.0)
    _at(hal, ev, 6.0)
    assert _names(events) == ["evse_status", "evse_status", "ev_session_start", "evse_status"]
    start = events[2][1]
    assert start["session"] == 1 and start["meter_wh"] == 500
    assert ev.status()["session_active"] is True
    # 10 minutes at 1 Wh every 1 s (3.6 kW), a pause (SuspendedEV), then charging again.
    for _ in range(600):
        _at(hal, ev, 6.0, n=10)
        hal.pulses += 1
    _at(hal, ev, 9.0, n=100)
    _at(hal, ev, 6.0, n=100, pulses=1)
    s = ev.status()
    assert s["session_kwh"] == 0.7 and s["power_w"] == 3600 and s["session"] == 1
    _at(hal, ev, 12.0)
    stop = events[-2][1]
    assert events[-2][0] == "ev_session_stop"
    assert stop["session"] == 1 and stop["wh"] == 700 and stop["kwh"] == 0.7
    # 0.3 s to enter C, 600 s charging, 10 s paused, 10 s charging, 0.3 s to see A.
    assert stop["duration_s"] == 620 and stop["reason"] == "EVDisconnected"
    assert stop["meter_wh"] == 1200 and stop["timestamp"] == clock.iso()
    assert _statuses(events) == [
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEV",
        "Charging",
        "Available",
    ]
    assert ev.status()["session_active"] is False
    # The next vehicle, straight into C: a new session id.
    _at(hal, ev, 6.0)
    assert events[-2][0] == "ev_session_start" and events[-2][1]["session"] == 2


def test_a_session_idle_in_b_ends_after_idle_stop_s():
    hal, ev, events = _node(idle_stop_s=60)
    _at(hal, ev, 9.0)
    _at(hal, ev, 6.0, n=10)
    _at(hal, ev, 9.0, n=590)  # 59 s idle (from the third sample)
    assert ev.status()["session_active"] is True
    _at(hal, ev, 9.0, n=20)
    assert events[-2][0] == "ev_session_stop" and events[-2][1]["reason"] == "Other"
    assert ev.status()["status"] == "Finishing"
    _at(hal, ev, 9.0, n=600)
    _at(hal, ev, 12.0)
    assert _names(events).count("ev_session_stop") == 1
    assert _statuses(events) == ["Preparing", "Charging", "SuspendedEV", "Finishing", "Available"]


def test_idle_stop_zero_keeps_the_session_until_unplug():
    hal, ev, events = _node(idle_stop_s=0)
    _at(hal, ev, 6.0)
    _at(hal, ev, 9.0, n=5000)
    assert ev.status()["session_active"] is True
    _at(hal, ev, 12.0)
    assert ev.status()["session_active"] is False


def test_status_is_notified_once_per_change_as_ocpp_status_notification():
    hal, ev, events = _node(connector_id=2)
    _at(hal, ev, 12.0, n=100)
    _at(hal, ev, 9.0, n=100)
    _at(hal, ev, 6.0, n=100)
    _at(hal, ev, 3.0, n=100)  # C -> D: still Charging, nothing to notify
    assert _statuses(events) == ["Available", "Preparing", "Charging"]
    p = events[0][1]
    assert sorted(p) == ["connectorId", "errorCode", "status", "timestamp"]
    assert p["connectorId"] == 2 and p["errorCode"] == "NoError"
    assert p["timestamp"] == clock.iso(_START) and p["timestamp"].endswith("Z")


def test_config_errors_name_the_key():
    hal = sim_hal()
    for key, bad in (("debounce", 0), ("sample_ms", 5), ("s0_imp_kwh", 0), ("idle_stop_s", -1)):
        e = raises(ValueError, Evse, hal, print, {key: bad})
        assert key in str(e), e
    assert "nope" in str(raises(ValueError, Evse, hal, print, {"nope": 1}))

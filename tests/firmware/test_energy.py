# Burn hours and kWh from the power model or an S0 meter, persisted across reboots.
import asyncio
import os

from fw import fresh, raises, sim_hal
from lamp import clock
from lamp.dimmer import Dimmer, cie_steps
from lamp.energy import Energy, model_mw

_START = 1795600000


def _fresh(name):
    return fresh(name + ".json")


def _node(name, dcfg=None, **ecfg):
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    e = Energy(hal, ecfg, _fresh(name))
    d = Dimmer(hal, cfg=dcfg, hours=e.burn_h)
    e.output = d.output
    return hal, d, e


def _run_for(e, seconds):
    for _ in range(seconds):
        clock.get().advance_ms(1000)
        e.update()


def test_full_power_for_an_hour_is_rated_power_and_one_burn_hour():
    hal, d, e = _node("full", rated_power_w=100)
    d.set_now(100, "schedule")
    e.update()
    _run_for(e, 3600)
    s = e.status()
    assert e.mwh == 100000 and e.burn_s == 3600 and e.burn_h() == 1
    assert s["kwh"] == 0.1 and s["burn_h"] == 1.0 and s["power_w"] == 100.0
    assert s["switch_on"] == 1 and s["source"] == "model"


def test_power_follows_the_dimming_curve_above_the_driver_floor():
    hal, d, e = _node("curve", rated_power_w=100, driver_floor_pct=8)
    d.set_now(50, "schedule")
    e.update()
    y = cie_steps(50, 13) * 10000 // 8191  # 18.4 % of full light
    assert e.power_mw == 8000 + 92000 // 10 * y // 1000
    assert 24800 <= e.power_mw <= 25100
    d.set_now(0, "schedule")
    e.update()
    assert e.power_mw == 0  # relay open: not even standby
    cfg = e.cfg
    assert model_mw(cfg, True, 0) == 500  # relay closed, dark: driver standby
    assert model_mw(cfg, True, 10000) == 100000


def test_integer_accumulation_does_not_drift():
    # 37 W in 20 ms slices for an hour: 180000 slices of 740 mW*s each.
    hal, d, e = _node("drift", rated_power_w=37)
    d.set_now(100, "schedule")
    e.update()
    for _ in range(180000):
        clock.get().advance_ms(20)
        e.update()
    assert e.mwh == 37000 and e.burn_s == 3600


def test_dark_time_does_not_count_as_burn_hours():
    hal, d, e = _node("dark")
    d.set_now(0, "schedule")
    e.update()
    _run_for(e, 600)
    assert e.burn_s == 0 and e.mwh == 0 and e.switch_on == 0
    d.set_now(30, "schedule")
    e.update()
    d.set_now(0, "schedule")
    e.update()
    d.set_now(30, "schedule")
    e.update()
    assert e.switch_on == 2


def test_s0_meter_gives_measured_energy_and_power():
    hal, d, e = _node("s0", energy_source="s0", s0_imp_kwh=1000)
    d.set_now(100, "schedule")
    e.update()
    hal.pulses += 250  # 250 Wh at 1000 imp/kWh
    _run_for(e, 1)
    assert e.mwh == 250000
    _run_for(e, 58)
    hal.pulses += 1
    _run_for(e, 1)  # a minute: 251 Wh in 60 s -> 15.06 kW, as the meter says
    assert e.mwh == 251000
    assert e.power_mw == 251 * 1000 * 3600 // 60


def test_s0_source_needs_a_meter_constant_in_range():
    hal = sim_hal()
    e = raises(ValueError, Energy, hal, {"s0_imp_kwh": 0}, _fresh("bad"))
    assert "s0_imp_kwh" in str(e)
    e = raises(ValueError, Energy, hal, {"energy_source": "ct"}, _fresh("bad"))
    assert "energy_source" in str(e)


def test_counters_survive_a_reboot():
    hal, d, e = _node("reboot", rated_power_w=60)
    d.set_now(100, "schedule")
    e.update()
    _run_for(e, 7200)
    e.save()
    path = e.path
    assert path.split("/")[-1] + ".tmp" not in os.listdir("/tmp")  # renamed into place
    e2 = Energy(sim_hal(), {"rated_power_w": 60}, path)
    assert (e2.burn_s, e2.mwh, e2.switch_on) == (7200, 120000, 1)
    e2.save()  # again over an existing file
    e3 = Energy(sim_hal(), None, path)
    assert e3.mwh == 120000
    _fresh("reboot")


def test_missing_or_corrupt_file_starts_from_zero_without_crashing():
    clock.setup(start=_START, manual=True)
    path = _fresh("corrupt")
    assert Energy(sim_hal(), None, path).mwh == 0  # missing
    for junk in (
        '{"v": 1, "burn_s": 3',
        "[]",
        '{"v": 1, "burn_s": -5, "mwh": 1, "switch_on": 0}',
        '{"v": 9, "burn_s": 1, "mwh": 1, "switch_on": 0}',
        "\xff\xfe",
    ):
        with open(path, "w") as f:
            f.write(junk)
        e = Energy(sim_hal(), None, path)
        assert (e.burn_s, e.mwh, e.switch_on) == (0, 0, 0), junk
    _fresh("corrupt")


async def test_periodic_save_is_bounded_by_save_min():
    hal, d, e = _node("periodic", save_min=5)
    d.set_now(100, "schedule")
    task = asyncio.create_task(e.run())
    while clock.mono_ms() < 290000:
        await asyncio.sleep_ms(0)
    name = e.path.split("/")[-1]
    assert name not in os.listdir("/tmp")
    while clock.mono_ms() < 301000:
        await asyncio.sleep_ms(0)
    assert name in os.listdir("/tmp")
    assert Energy(sim_hal(), None, e.path).burn_s >= 299
    saved = e._saved_t
    while clock.mono_ms() < 590000:  # no second write before another 5 minutes
        await asyncio.sleep_ms(0)
    assert e._saved_t == saved
    task.cancel()
    _fresh("periodic")

# Level to duty through the CIE 1931 lightness curve; fades, limits, relay, CLO.
import asyncio

from fw import raises, sim_hal
from lamp import clock
from lamp.dimmer import Dimmer, cie_duty


def test_curve_ends_and_is_monotonic():
    assert cie_duty(0, 13) == 0
    assert cie_duty(100, 13) == 65535
    last = 0
    for level in range(101):
        d = cie_duty(level, 13)
        assert d >= last, level
        last = d


def test_curve_is_perceptual_not_linear():
    # L* = 50 needs Y = ((50 + 16) / 116) ** 3 = 18.4 % of full light.
    assert abs(cie_duty(50, 16) / 65535 - 0.1842) < 0.001
    # Below L* = 8 the curve is linear: 1 % -> 1 / 903.3.
    assert abs(cie_duty(1, 16) / 65535 - 1 / 903.3) < 0.0001


def test_curve_is_quantised_at_board_resolution():
    # At 8 bits the duty can only take 256 values.
    for level in range(101):
        assert cie_duty(level, 8) % 257 == 0


def test_relay_follows_level_and_changes_are_reported():
    hal = sim_hal()
    seen = []
    d = Dimmer(hal, lambda level, why: seen.append((level, why)))
    d.set(100, "failsafe")
    assert hal.relay_on and hal.duty == 65535
    d.set(100, "failsafe")  # no change, no report
    d.set_now(0, "schedule")
    assert not hal.relay_on and hal.duty == 0
    assert seen == [(100, "failsafe"), (0, "schedule")]


def test_out_of_range_level_changes_nothing():
    hal = sim_hal()
    d = Dimmer(hal)
    d.set_now(40, "schedule")
    raises(ValueError, d.set, 101, "x")
    raises(ValueError, d.set, -1, "x")
    assert d.level == 40 and hal.duty == cie_duty(40, 13)


# --- fades, limits, output stage, CLO (manual clock: sleeps step time, no waiting) ---

_START = 1795600000


def _recording(hal):
    # (mono ms, duty) for every PWM write and (mono ms, "relay", on) for every relay write.
    log = []
    hal._write_duty = lambda duty: log.append((clock.mono_ms(), duty))
    hal._write_relay = lambda on: log.append((clock.mono_ms(), "relay", on))
    return log


async def _settle(d):
    while d.fading():
        await asyncio.sleep_ms(0)


def _duties(log):
    return [e[1] for e in log if len(e) == 2]


async def test_fade_is_smooth_at_50_updates_per_second():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    seen = []
    d = Dimmer(hal, lambda level, why: seen.append(level))
    d.set(0, "boot")
    log = _recording(hal)
    d.set(100, "schedule")  # 20 %/s by default: 5 s
    await _settle(d)
    writes = [e for e in log if len(e) == 2]
    t0, t_end = writes[0][0], writes[-1][0]
    assert 4900 <= t_end - t0 <= 5100, t_end - t0
    for s in range((t_end - t0) // 1000):
        n = len([w for w in writes if t0 + s * 1000 <= w[0] < t0 + (s + 1) * 1000])
        assert n >= 50, (s, n)
    duties = _duties(log)
    assert duties[-1] == 65535
    biggest = 0
    for i in range(1, len(duties)):  # (MicroPython's zip has no strict=)
        assert duties[i] >= duties[i - 1]  # monotonic
        biggest = max(biggest, duties[i] - duties[i - 1])
    assert biggest <= 1000, biggest  # ~1.5 % of full light per 20 ms step at most
    assert seen == [0, 100]  # one report per target, none per step


async def test_new_target_mid_fade_retargets_from_the_current_point():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    seen = []
    d = Dimmer(hal, lambda level, why: seen.append(level))
    d.set(0, "boot")
    log = _recording(hal)
    d.set(100, "schedule")
    while clock.mono_ms() < 2500:  # half way: level 50
        await asyncio.sleep_ms(0)
    before = hal.duty
    n = len(log)
    d.set(20, "override")
    await _settle(d)
    after = _duties(log[n:])
    assert abs(after[0] - before) <= 1000  # no jump at the retarget
    for i in range(1, len(after)):
        assert after[i] <= after[i - 1]
    assert after[-1] == cie_duty(20, 13) and d.level == 20
    assert seen == [0, 100, 20]


async def test_fade_time_can_be_given_and_zero_jumps():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    d = Dimmer(hal)
    d.set(0, "boot")
    t0 = clock.mono_ms()
    d.set(60, "schedule", fade_s=2)
    await _settle(d)
    assert 1980 <= clock.mono_ms() - t0 <= 2040
    assert hal.duty == cie_duty(60, 13)
    d.set(10, "override", fade_s=0)
    assert not d.fading() and hal.duty == cie_duty(10, 13)
    d.set(30, "schedule")
    d.set_now(80, "override")  # a jump cancels the fade under way
    await asyncio.sleep_ms(0)
    assert not d.fading() and hal.duty == cie_duty(80, 13)


async def test_below_min_level_is_off_never_a_sub_minimum_duty():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    d = Dimmer(hal, cfg={"min_level": 20, "max_level": 90})
    d.set_now(5, "schedule")
    assert d.level == 0 and hal.duty == 0 and not hal.relay_on
    d.set_now(100, "schedule")
    assert d.level == 90 and hal.duty == cie_duty(90, 13)
    d.set_now(50, "schedule")
    log = _recording(hal)
    d.set(10, "schedule")  # below 20: a fade to off
    await _settle(d)
    duties = _duties(log)
    assert duties[-1] == 0 and d.level == 0
    assert min(x for x in duties if x) >= cie_duty(20, 13)
    log.clear()
    d.set(40, "schedule")  # from off: starts at the minimum, not below
    await _settle(d)
    assert min(_duties(log)) >= cie_duty(20, 13)


async def test_relay_closes_before_light_and_opens_after_dark():
    clock.setup(start=_START, manual=True)
    hal = sim_hal()
    d = Dimmer(hal)
    d.set(0, "boot")
    log = _recording(hal)
    d.set(60, "schedule")
    await _settle(d)
    assert log[0][1:] == ("relay", True)
    assert all(e[1] == "relay" or e[1] > 0 for e in log[1:])
    log.clear()
    d.set(0, "schedule")
    while clock.mono_ms() < 4000:
        await asyncio.sleep_ms(0)
        assert hal.relay_on or hal.duty == 0
    await _settle(d)
    assert log[-1][1:] == ("relay", False) and log[-2][1] == 0
    assert [e for e in log if e[1] == "relay"] == [log[-1]]  # opened once, at the end


def test_one_to_ten_volt_output_is_inverted():
    hal = sim_hal()
    d = Dimmer(hal, cfg={"output": "1-10v-inverted"})
    d.set_now(100, "schedule")
    assert hal.duty == 0 and hal.relay_on
    d.set_now(50, "schedule")
    assert hal.duty == 65535 - cie_duty(50, 13)
    d.set_now(0, "schedule")
    assert hal.duty == 65535 and not hal.relay_on


def test_constant_light_output_rises_with_burn_hours():
    hal = sim_hal()
    hours = [0]
    cfg = {"clo_start_factor": 0.8, "rated_life_h": 50000}
    d = Dimmer(hal, cfg=cfg, hours=lambda: hours[0])
    d.set_now(100, "schedule")
    assert d.clo == 800 and d.steps == int(0.8 * 8191 + 0.5)
    hours[0] = 25000
    d.set_now(50, "schedule")
    d.set_now(100, "schedule")
    assert d.clo == 900 and d.steps == int(0.9 * 8191 + 0.5)
    hours[0] = 50000
    d.set_now(40, "schedule")
    assert d.clo == 1000 and hal.duty == cie_duty(40, 13)
    hours[0] = 90000  # past rated life: no over-drive beyond 1.0
    d.set_now(100, "schedule")
    assert d.clo == 1000 and hal.duty == 65535


def test_config_is_checked_once_and_errors_name_the_key():
    hal = sim_hal()
    for bad, key in (
        ({"fade_rate_pct_s": 0}, "fade_rate_pct_s"),
        ({"min_level": 60}, "min_level"),
        ({"output": "dali"}, "output"),
        ({"clo_start_factor": 0.2}, "clo_start_factor"),
        ({"min_level": 30, "max_level": 20}, "max_level"),
        ({"rated_life_h": 5.5}, "rated_life_h"),
        ({"fade": 1}, "fade"),
    ):
        e = raises(ValueError, Dimmer, hal, None, bad)
        assert key in str(e), (key, e)

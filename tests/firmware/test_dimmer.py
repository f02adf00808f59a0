# Level to duty through the CIE 1931 lightness curve; relay off at 0 %.
from fw import raises, sim_hal
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
    d.set(0, "schedule")
    assert not hal.relay_on and hal.duty == 0
    assert seen == [(100, "failsafe"), (0, "schedule")]


def test_out_of_range_level_changes_nothing():
    hal = sim_hal()
    d = Dimmer(hal)
    d.set(40, "schedule")
    raises(ValueError, d.set, 101, "x")
    raises(ValueError, d.set, -1, "x")
    assert d.level == 40 and hal.duty == cie_duty(40, 13)

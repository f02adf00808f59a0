# Sun events from the NOAA equations: arguments, polar status, plausibility. The minute-level
# accuracy against astral for six cities and Tromso is in tests/test_astro_vectors.py.
from fw import raises
from lamp import astro


def test_arguments_out_of_range_are_named():
    assert "lat" in str(raises(ValueError, astro.sun, 2026, 6, 21, 90.5, 0))
    assert "lat" in str(raises(ValueError, astro.sun, 2026, 6, 21, -91, 0))
    assert "lon" in str(raises(ValueError, astro.sun, 2026, 6, 21, 45, 180.1))
    assert "lon" in str(raises(ValueError, astro.sunrise_sunset, 2026, 6, 21, 45, -181))
    assert "month" in str(raises(ValueError, astro.civil_twilight, 2026, 13, 1, 45, 9))
    assert "day" in str(raises(ValueError, astro.sun, 2026, 2, 29, 45, 9))
    assert "elevation" in str(raises(ValueError, astro.sun, 2026, 6, 21, 45, 9, -91))
    # The edges themselves are valid, and leap days exist in leap years.
    for lat in (-90, 90):
        for lon in (-180, 180):
            assert astro.sun(2028, 2, 29, lat, lon)[0] in (astro.POLAR_DAY, astro.POLAR_NIGHT)


def test_poles_are_polar_day_in_their_summer_and_night_in_their_winter():
    assert astro.sunrise_sunset(2026, 6, 21, 90, 0) == (astro.POLAR_DAY, None, None)
    assert astro.sunrise_sunset(2026, 12, 21, 90, 0) == (astro.POLAR_NIGHT, None, None)
    assert astro.sunrise_sunset(2026, 6, 21, -90, 0) == (astro.POLAR_NIGHT, None, None)
    assert astro.sunrise_sunset(2026, 12, 21, -90, 0) == (astro.POLAR_DAY, None, None)
    assert astro.civil_twilight(2026, 12, 21, -89.9, 120)[0] == astro.POLAR_DAY


def test_tromso_midwinter_has_no_sunrise_but_has_civil_twilight():
    assert astro.sunrise_sunset(2026, 12, 21, 69.65, 18.96)[0] == astro.POLAR_NIGHT
    status, dawn, dusk = astro.civil_twilight(2026, 12, 21, 69.65, 18.96)
    assert status == astro.NORMAL and dawn < 645 < dusk, (dawn, dusk)  # noon 10:44 UTC
    assert astro.sunrise_sunset(2026, 6, 21, 69.65, 18.96)[0] == astro.POLAR_DAY


def test_equator_at_equinox_has_twelve_hours_of_day_around_noon():
    status, rise, set_ = astro.sunrise_sunset(2026, 3, 20, 0, 0)
    assert status == astro.NORMAL
    # Refraction and the solar radius add ~2 x 3.5 min; the equation of time (-7.5 min
    # on 20 March) moves noon to ~12:07.
    assert 720 + 5 < set_ - rise < 720 + 9, set_ - rise
    assert 725 < (rise + set_) / 2 < 730, (rise + set_) / 2
    # Civil twilight lasts ~21-22 min at the equator.
    status, dawn, dusk = astro.civil_twilight(2026, 3, 20, 0, 0)
    assert 20 < rise - dawn < 23 and 20 < dusk - set_ < 23, (rise - dawn, dusk - set_)


def test_normal_day_orders_dawn_rise_set_dusk():
    for month in range(1, 13):
        _, dawn, dusk = astro.civil_twilight(2026, month, 15, 51.5074, -0.1278)
        status, rise, set_ = astro.sunrise_sunset(2026, month, 15, 51.5074, -0.1278)
        assert status == astro.NORMAL
        assert 0 < dawn < rise < 720 < set_ < dusk < 1440, (month, dawn, rise, set_, dusk)
    # London midsummer: about 16 h 38 min from sunrise to sunset.
    _, rise, set_ = astro.sunrise_sunset(2026, 6, 21, 51.5074, -0.1278)
    assert 16 * 60 + 35 < set_ - rise < 16 * 60 + 41, set_ - rise


def test_far_west_sets_after_utc_midnight_and_far_east_rises_before_it():
    # Honolulu (UTC-10): the local evening is the next UTC day.
    status, rise, set_ = astro.sunrise_sunset(2026, 6, 21, 21.3069, -157.8583)
    assert status == astro.NORMAL and 900 < rise < 1440 < set_ < 1440 + 360, (rise, set_)
    # Auckland (UTC+12): the local morning is the previous UTC day.
    status, rise, set_ = astro.sunrise_sunset(2026, 6, 21, -36.8485, 174.7633)
    assert status == astro.NORMAL and -720 < rise < 0 < set_ < 720, (rise, set_)


def test_days_follow_each_other_across_month_and_year_ends():
    # No jump at a calendar boundary: consecutive days differ by under 2 minutes.
    for a, b in (
        ((2025, 12, 31), (2026, 1, 1)),
        ((2028, 2, 28), (2028, 2, 29)),
        ((2028, 2, 29), (2028, 3, 1)),
    ):
        ra = astro.sunrise_sunset(*a, 45.4642, 9.19)
        rb = astro.sunrise_sunset(*b, 45.4642, 9.19)
        assert abs(ra[1] - rb[1]) < 2 and abs(ra[2] - rb[2]) < 2, (ra, rb)


def test_results_are_finite_everywhere():
    # No NaN and no math domain error over the globe through the year.
    for lat in range(-90, 91, 5):
        for month in range(1, 13):
            status, rise, set_ = astro.sun(2026, month, 1, lat, 0.5 * lat)
            if status == astro.NORMAL:
                assert rise == rise and set_ == set_ and rise < set_, (lat, month)
            else:
                assert rise is None and set_ is None

"""lamp.astro in MicroPython against the `astral` package, every day of 2026.

CPython computes the oracle with astral (observer elevation 0, UTC) and streams it to a
JSON-lines file; tests/firmware/check_astro.py reads it line by line inside MicroPython
under the pole's heap budget and reports how many vectors it checked, how many missed,
and the worst deviation per event. The test fails unless every vector was checked.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from astral import Observer, refraction_at_zenith
from astral import sun as asun

import mpharness

UTC = dt.UTC
YEAR = 2026
TOLERANCE_S = 60.0
CHECK = Path(__file__).parent / "firmware" / "check_astro.py"

# The Sharing Cities lighthouse and fellow cities.
CITIES = {
    "London": (51.5074, -0.1278),
    "Milan": (45.4642, 9.19),
    "Lisbon": (38.7223, -9.1393),
    "Bordeaux": (44.8378, -0.5792),
    "Burgas": (42.5048, 27.4626),
    "Warsaw": (52.2297, 21.0122),
}
TROMSO = (69.65, 18.96)
# astral's horizon is not NOAA's -0.833: it adds its own refraction model to the 16'
# solar radius (-0.789 deg) and to the civil depression (-6.055 deg). At the polar
# edges a few hundredths of a degree decide whether the sun rises at all, so the Tromso
# vectors ask lamp.astro for astral's horizon: the comparison is of the algorithm.
ASTRAL_SUNRISE = -(16 / 60 + refraction_at_zenith(90 + 16 / 60))
ASTRAL_CIVIL = -(6 + refraction_at_zenith(96))


def _days():
    day = dt.date(YEAR, 1, 1)
    while day.year == YEAR:
        yield day
        day += dt.timedelta(days=1)


def _minutes(fn, obs, day, **kw):
    # Minutes after 00:00 UTC of `day`, or None where astral finds no event.
    try:
        t = fn(obs, day, tzinfo=UTC, **kw)
    except ValueError:
        return None
    return (t - dt.datetime(day.year, day.month, day.day, tzinfo=UTC)).total_seconds() / 60


def _geometric(obs, when):
    return asun.elevation(obs, when, with_refraction=False)


def _polar_status(obs, day, horizon, rise, set_, stats):
    # The status astral implies. astral decides whether an event exists with the
    # declination at 00:00 UTC of the date (its first iteration), up to ten hours before
    # the event; on a day where that contradicts astral's own elevation(), which puts the
    # sun across the horizon at noon and below it at both midnights, elevation() wins.
    noon = _geometric(obs, asun.noon(obs, day))
    crosses = (
        noon > horizon
        and _geometric(obs, asun.midnight(obs, day)) < horizon
        and _geometric(obs, asun.midnight(obs, day + dt.timedelta(days=1))) < horizon
    )
    if rise is not None and set_ is not None:
        return "normal"
    if crosses and rise is None and set_ is None:
        stats["astral_self_contradictions"].append(str(day))
        return "normal"
    return "polar_night" if noon <= horizon else "polar_day"


def write_vectors(path: Path) -> dict:
    stats: dict = {"vectors": 0, "astral_self_contradictions": []}
    for kind in ("sun", "civil"):
        for status in ("polar_night", "polar_day"):
            stats[f"{kind}_{status}"] = []
    with path.open("w") as f:

        def emit(row):
            f.write(json.dumps(row) + "\n")
            stats["vectors"] += 1

        for name, (lat, lon) in CITIES.items():
            obs = Observer(lat, lon, 0.0)
            for day in _days():
                y, m, d = day.year, day.month, day.day
                rise = _minutes(asun.sunrise, obs, day)
                set_ = _minutes(asun.sunset, obs, day)
                emit([name, "sunrise_sunset", y, m, d, lat, lon, None, "normal", rise, set_])
                dawn = _minutes(asun.dawn, obs, day, depression=6)
                dusk = _minutes(asun.dusk, obs, day, depression=6)
                emit([name, "civil_twilight", y, m, d, lat, lon, None, "normal", dawn, dusk])

        lat, lon = TROMSO
        obs = Observer(lat, lon, 0.0)
        for day in _days():
            y, m, d = day.year, day.month, day.day
            for kind, horizon, up, down, kw in (
                ("sun", ASTRAL_SUNRISE, asun.sunrise, asun.sunset, {}),
                ("civil", ASTRAL_CIVIL, asun.dawn, asun.dusk, {"depression": 6}),
            ):
                rise = _minutes(up, obs, day, **kw)
                set_ = _minutes(down, obs, day, **kw)
                status = _polar_status(obs, day, horizon, rise, set_, stats)
                if status != "normal":
                    stats[f"{kind}_{status}"].append(day)
                # Times are not compared here: near the polar edges astral moves an event
                # that falls outside the UTC date to the neighbouring date's.
                emit(["Tromso", "sun", y, m, d, lat, lon, horizon, status, None, None])
    return stats


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    path = tmp_path_factory.mktemp("astro") / "vectors.jsonl"
    stats = write_vectors(path)
    return stats, mpharness.run_vectors(CHECK, "check_vectors", "ASTRO_VECTORS", path)


def test_micropython_checked_every_vector_with_no_mismatch(checked):
    stats, out = checked
    assert stats["vectors"] == 6 * 365 * 2 + 365 * 2
    assert mpharness.checked_count(out, "ASTRO") == (stats["vectors"], 0), out


def test_worst_deviation_from_astral_is_under_a_minute(checked):
    _, out = checked
    worst = {
        event: float(seconds) for event, seconds in re.findall(r"ASTRO worst (\w+) ([\d.]+) s", out)
    }
    print("worst deviation from astral (s):", worst)
    assert set(worst) == {"sunrise", "sunset", "dawn", "dusk"}, out
    assert all(s < TOLERANCE_S for s in worst.values()), worst


def _one_run(days):
    return all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False))


def test_tromso_polar_night_and_day_fall_where_they_should(checked):
    stats, _ = checked
    night, day = stats["sun_polar_night"], stats["sun_polar_day"]
    # The polar night straddles the new year: mid-January and from late November.
    assert night[0] == dt.date(YEAR, 1, 1) and night[-1] == dt.date(YEAR, 12, 31), night
    winter = [d for d in night if d.month == 1]
    autumn = [d for d in night if d.month > 1]
    print(f"Tromso polar night: {len(night)} days, to {winter[-1]} and from {autumn[0]}")
    print(f"Tromso polar day: {len(day)} days, {day[0]} .. {day[-1]}")
    assert winter + autumn == night and _one_run(winter) and _one_run(autumn), night
    assert dt.date(YEAR, 1, 10) <= winter[-1] <= dt.date(YEAR, 1, 20), night
    assert dt.date(YEAR, 11, 20) <= autumn[0] <= dt.date(YEAR, 11, 30), night
    assert _one_run(day) and dt.date(YEAR, 5, 15) <= day[0] <= dt.date(YEAR, 5, 25), day
    assert dt.date(YEAR, 7, 20) <= day[-1] <= dt.date(YEAR, 7, 31), day
    # Civil twilight still happens every winter day at 69.65 N; in summer it goes too.
    assert stats["civil_polar_night"] == [], stats
    assert len(stats["civil_polar_day"]) > len(day), stats
    # Only days where astral's sunrise() disagrees with its own elevation() are overruled.
    assert len(stats["astral_self_contradictions"]) <= 1, stats

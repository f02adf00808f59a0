"""`lanterna schedule preview --year`: every night of a year, by the node's own code."""

from __future__ import annotations

import json
import math
import subprocess
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from astral import LocationInfo
from astral.sun import sun

from lamp import schedule as fwsched
from lanterna.fleet import energy as er
from lanterna.fleet import schedules

GREENWICH = (51.4826, 0.0077, "Europe/London")
TROMSO = (69.65, 18.96, "Europe/Oslo")  # polar night in December, midnight sun in June
GREENWICH_ARGS = ["--lat", "51.4826", "--lon", "0.0077", "--tz", "Europe/London"]
RATED_W = 50


def _sched(sid: str, steps: list[dict]) -> dict:
    return {"version": 1, "id": sid, "profiles": {"all": steps}, "calendar": [{"profile": "all"}]}


FULL = _sched("full", [{"at": "sunset", "level": 100}, {"at": "sunrise", "level": 0}])
HALF_FROM_MIDNIGHT = _sched(
    "half",
    [
        {"at": "sunset", "level": 100},
        {"at": "00:00", "level": 50},
        {"at": "sunrise", "level": 0},
    ],
)


def _run(lanterna_cmd, *args):
    return subprocess.run(
        [*lanterna_cmd, "schedule", "preview", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _json(lanterna_cmd, *args) -> dict:
    r = _run(lanterna_cmd, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def files(tmp_path, repo):
    out = {"greenwich": repo / "docs" / "examples" / "schedule-greenwich.json"}
    out["saver"] = repo / "docs" / "examples" / "schedule-night-saver.json"
    for name, obj in (("full", FULL), ("half", HALF_FROM_MIDNIGHT)):
        out[name] = tmp_path / f"{name}.json"
        out[name].write_text(json.dumps(obj))
    return out


def test_full_power_all_night_saves_nothing_over_the_year():
    y = schedules.year(fwsched.parse(FULL), 2027, *GREENWICH, rated_w=RATED_W)
    # Same instants as the baseline (the node's sunset and sunrise), at 100 % = rated W.
    assert y.baseline_kwh > 150  # ~4,280 dark hours at 50 W
    assert abs(y.kwh - y.baseline_kwh) < 1e-6
    t = y.totals()
    assert t["saved_kwh"] == 0 and t["saved_eur"] == 0 and t["saved_co2_kg"] == 0


def _p50_w() -> float:
    # docs/energy.md: light = CIE 1931 lightness -> luminance, power linear in light above
    # the driver's floor (energy.driver_floor_pct, 8 % of rated). At 50 %: Y = (66/116)^3.
    y = ((50 + 16) / 116) ** 3
    return RATED_W * (0.08 + 0.92 * y)


def test_dimming_to_half_from_midnight_saves_what_astral_says():
    lat, lon, tz = GREENWICH
    y = schedules.year(fwsched.parse(HALF_FROM_MIDNIGHT), 2027, lat, lon, tz, rated_w=RATED_W)
    zone = ZoneInfo(tz)
    obs = LocationInfo("g", "uk", tz, lat, lon).observer
    full_kwh = half_kwh = 0.0
    d = date(2027, 1, 1)
    while d.year == 2027:
        sunset = sun(obs, date=d, tzinfo=zone)["sunset"]
        sunrise = sun(obs, date=d + timedelta(days=1), tzinfo=zone)["sunrise"]
        midnight = datetime.combine(d + timedelta(days=1), time(0), zone)
        full_kwh += RATED_W * (sunrise - sunset).total_seconds() / 3.6e6
        half_kwh += (
            RATED_W * (midnight - sunset).total_seconds()
            + _p50_w() * (sunrise - midnight).total_seconds()
        ) / 3.6e6
        d += timedelta(days=1)
    # astral and the node's NOAA code agree on each sunset and sunrise within a minute
    # (test_cli_schedule checks that on a night): 365 nights x 60 s x (50 W at the evening
    # end + 12.5 W at the morning end) bounds the year's difference at 0.38 kWh. The
    # saving itself is ~60 kWh, so a wrong level, power or step instant falls far outside.
    expected_saved = full_kwh - half_kwh
    assert expected_saved > 40
    assert abs(y.baseline_kwh - full_kwh) < 365 * 60 * 2 * RATED_W / 3.6e6
    assert abs((y.baseline_kwh - y.kwh) - expected_saved) < 0.4
    t = y.totals()
    assert t["saved_eur"] == pytest.approx(t["saved_kwh"] * er.PRICE_PER_KWH, abs=0.01)
    assert t["saved_co2_kg"] == pytest.approx(t["saved_kwh"] * er.CO2_PER_KWH, abs=0.01)


@pytest.mark.parametrize(("year", "n"), [(2027, 365), (2028, 366)])
def test_the_year_has_every_night_once(year, n):
    y = schedules.year(fwsched.parse(FULL), year, *GREENWICH)
    days = [night.date for night in y.nights]
    assert len(days) == n
    assert days[0] == date(year, 1, 1) and days[-1] == date(year, 12, 31)
    assert all(b - a == timedelta(days=1) for a, b in zip(days, days[1:], strict=False))


def test_each_night_is_the_one_night_preview(files):
    _, sched = schedules.load(files["greenwich"])
    y = schedules.year(sched, 2027, *GREENWICH, rated_w=70)
    by_date = {n.date: n for n in y.nights}
    # Both DST changes, a weekend, New Year's Eve (its own profile), a summer night.
    for d in ("2027-03-27", "2027-03-28", "2027-10-30", "2027-10-31", "2027-12-31", "2027-06-18"):
        p = schedules.preview(sched, date.fromisoformat(d), *GREENWICH, rated_w=70)
        n = by_date[date.fromisoformat(d)]
        assert (n.profile, n.kwh, n.baseline_kwh) == (p.profile, p.kwh, p.baseline_kwh)


def test_sum_of_nights_and_months_is_the_totals(files):
    _, sched = schedules.load(files["greenwich"])
    _, other = schedules.load(files["saver"])
    y = schedules.year(sched, 2028, *GREENWICH, against=other)
    assert math.isclose(sum(m["kwh"] for m in y.months()), y.kwh)
    j = y.as_json()
    t = j["totals"]
    # Each night is rounded to 1 Wh: 366 of them may be off by 0.183 kWh at most.
    for key, night_key in (("kwh", "kwh"), ("baseline_kwh", "baseline_kwh")):
        assert abs(sum(n[night_key] for n in j["nights"]) - t[key]) <= 366 * 0.0005
    assert abs(sum(n["against_kwh"] for n in j["nights"]) - j["against"]["totals"]["kwh"]) <= (
        366 * 0.0005
    )
    assert [m["month"] for m in j["months"]] == [f"2028-{i:02}" for i in range(1, 13)]
    assert abs(sum(m["baseline_kwh"] for m in j["months"]) - t["baseline_kwh"]) <= 12 * 0.0005
    # Three figures, each rounded to 3 decimals on its own.
    assert t["saved_kwh"] == pytest.approx(t["baseline_kwh"] - t["kwh"], abs=0.0011)


def test_polar_site_gives_empty_summer_nights_and_full_winter_ones():
    y = schedules.year(fwsched.parse(FULL), 2027, *TROMSO, rated_w=RATED_W)
    by_date = {n.date: n for n in y.nights}
    midsummer, midwinter = by_date[date(2027, 6, 21)], by_date[date(2027, 12, 21)]
    assert midsummer.baseline_kwh == 0 and midsummer.kwh == 0
    # Polar night: lit from noon to noon, 24 h (no DST change in December).
    assert midwinter.baseline_kwh == pytest.approx(24 * RATED_W / 1000)
    assert midwinter.kwh == pytest.approx(midwinter.baseline_kwh)
    assert sum(1 for n in y.nights if n.baseline_kwh == 0) > 50  # midnight sun ~ 20/5 to 22/7
    assert y.as_json()["totals"]["saving_pct"] is not None


# -- the command --------------------------------------------------------------------------


def test_json_has_the_console_shape(lanterna_cmd, files):
    out = _json(lanterna_cmd, files["greenwich"], "--year", "2027", *GREENWICH_ARGS)
    assert out["schedule"] == "greenwich-2026" and out["year"] == 2027
    assert out["tz"] == "GMT0BST,M3.5.0/1,M10.5.0" and out["rated_w"] == 50
    assert (out["price_eur_kwh"], out["co2_kg_kwh"]) == (er.PRICE_PER_KWH, er.CO2_PER_KWH)
    assert out["baseline"] == "full power from sunset to sunrise" and out["against"] is None
    assert len(out["nights"]) == 365 and "against_kwh" not in out["nights"][0]
    assert set(out["nights"][0]) == {"date", "profile", "kwh", "baseline_kwh"}
    assert set(out["totals"]) == {
        "kwh", "baseline_kwh", "saved_kwh", "saving_pct", "eur", "baseline_eur",
        "saved_eur", "co2_kg", "baseline_co2_kg", "saved_co2_kg",
    }  # fmt: skip
    assert len(out["months"]) == 12 and set(out["months"][0]) == {"month", "kwh", "baseline_kwh"}


def test_against_shows_the_other_schedule_as_its_own_year_run(lanterna_cmd, files):
    args = ["--year", "2027", *GREENWICH_ARGS, "--price-per-kwh", "0.31"]
    both = _json(lanterna_cmd, files["greenwich"], "--against", files["saver"], *args)
    alone = _json(lanterna_cmd, files["saver"], *args)
    assert both["against"] == {"schedule": "night-saver-2026", "totals": alone["totals"]}
    assert [n["against_kwh"] for n in both["nights"]] == [n["kwh"] for n in alone["nights"]]
    assert [m["against_kwh"] for m in both["months"]] == [m["kwh"] for m in alone["months"]]
    assert both["totals"]["eur"] == pytest.approx(both["totals"]["kwh"] * 0.31, abs=0.01)


def test_table_has_a_row_per_month_and_ends_with_the_savings(lanterna_cmd, files, tmp_path):
    png = tmp_path / "year.png"
    r = _run(
        lanterna_cmd, files["half"], "--year", "2027", "--against", files["full"],
        *GREENWICH_ARGS, "--png", png,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    months = [ln for ln in lines if ln[:5] == "2027-"]
    assert [ln.split()[0] for ln in months] == [f"2027-{i:02}" for i in range(1, 13)]
    total = next(ln for ln in lines if ln.startswith("total")).split()
    j = _json(
        lanterna_cmd, files["half"], "--year", "2027", "--against", files["full"], *GREENWICH_ARGS
    )
    # columns: month, kWh, full kWh, baseline kWh, saved kWh, saved %
    assert float(total[1]) == pytest.approx(j["totals"]["kwh"], abs=0.0011)
    assert float(total[2]) == pytest.approx(j["against"]["totals"]["kwh"], abs=0.0011)
    assert total[2] == total[3]  # full power all night is the baseline
    t = j["totals"]
    assert lines[-1] == (
        f"half saves: {t['saved_kwh']:.3f} kWh, {t['saved_eur']:.2f} EUR, "
        f"{t['saved_co2_kg']:.2f} kg CO2 ({t['saving_pct']} % of full power)"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_against_file_is_exit_4_naming_it(lanterna_cmd, files, tmp_path):
    bad = tmp_path / "bad-against.json"
    obj = json.loads(json.dumps(FULL))
    obj["profiles"]["all"][0]["level"] = 140
    bad.write_text(json.dumps(obj))
    r = _run(lanterna_cmd, files["full"], "--year", "2027", "--against", bad, *GREENWICH_ARGS)
    assert r.returncode == 4 and r.stdout == ""
    assert r.stderr.strip() == f"Error: {bad}: schedule: profiles.all[0].level: 140 outside 0..100"
    missing = tmp_path / "none.json"
    r = _run(lanterna_cmd, files["full"], "--year", "2027", "--against", missing, *GREENWICH_ARGS)
    assert r.returncode == 4 and str(missing) in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--year", "2027", "--date", "2027-01-01"], "give one of --date"),
        ([], "give one of --date"),
        (["--date", "2027-01-01", "--against", "x.json"], "--against goes with --year"),
    ],
)
def test_year_and_date_are_exclusive(lanterna_cmd, files, extra, message):
    r = _run(lanterna_cmd, files["full"], *extra, *GREENWICH_ARGS)
    assert r.returncode == 2 and message in r.stderr and r.stdout == ""

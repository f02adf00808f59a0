"""`lanterna energy report`: kWh from the lamps' counters against the sunset-to-sunrise
full-power baseline, checked against numbers worked out here and against astral."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from astral import LocationInfo
from astral.sun import sunrise, sunset
from click.testing import CliRunner

from lanterna.cli import cli
from lanterna.fleet import energy as er
from lanterna.fleet import schedules
from lanterna.store.db import Store, StoreError, UnknownGroup

GREENWICH = (51.4826, 0.0077, "Europe/London")
MILAN = (45.4520, 9.2000, "Europe/Rome")
TROMSO = (69.6496, 18.9560, "Europe/Oslo")
HOUR = 3600


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def tele(node: str, ts: float, kwh: float, level: int = 50) -> tuple[str, str, bytes, float]:
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {"v": 1, "ts": stamp, "level": level, "energy": {"kwh": kwh, "power_w": 25.0}}
    return (node, "tele", json.dumps(payload).encode(), ts + 1)


def burn(node: str, start: float, end: float, watts: float, every: float = 60, kwh0=0.0):
    """Telemetry of a lamp drawing `watts` from `start` to `end`, a sample every `every` s."""
    n = int((end - start) // every)
    return [
        tele(node, start + i * every, kwh0 + watts * i * every / HOUR / 1000) for i in range(n + 1)
    ]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "x.db")
    s.put_site("greenwich", *GREENWICH)
    s.put_site("milan", *MILAN)
    for node, site, rated in (
        ("g1", "greenwich", 50),
        ("g2", "greenwich", 40),
        ("m1", "milan", 60),
    ):
        s.put_node(node, site, "sim", bytes(32), rated_w=rated)
    s.put_group("high-street")
    s.group_add("high-street", ["g1", "m1"])
    yield s
    s.close()


def night_hours(lat: float, lon: float, tz: str, since: float, until: float) -> float:
    """Hours between sunset and sunrise in [since, until], by astral (the oracle)."""
    where = LocationInfo("x", "x", tz, lat, lon).observer
    first = datetime.fromtimestamp(since, UTC).date() - timedelta(days=1)
    dark = 0.0
    for k in range((int(until - since) // 86400) + 3):
        d = first + timedelta(days=k)
        a = sunset(where, d, tzinfo=UTC).timestamp()
        b = sunrise(where, d + timedelta(days=1), tzinfo=UTC).timestamp()
        dark += max(0.0, min(b, until) - max(a, since))
    return dark / HOUR


# -- the counter -------------------------------------------------------------------------


def test_constant_power_is_power_times_hours_with_straddling_periods_shared(store):
    # 25 W for a day, a sample every 5 min, the interval's ends between samples.
    store.ingest(burn("g1", utc("2026-11-24T00:00"), utc("2026-11-25T06:00"), 25, every=300))
    since, until = utc("2026-11-24T06:02:30"), utc("2026-11-25T03:31:10")
    r = er.report(store, since, until, site="greenwich")
    g1 = next(n for n in r.nodes if n.name == "g1")
    assert g1.kwh == pytest.approx(0.025 * (until - since) / HOUR, rel=1e-9)
    assert g1.coverage == pytest.approx(1.0)
    assert g1.samples == 258 and g1.resets == 0  # 06:05 to 03:30, every 5 min


def test_a_counter_reset_starts_a_new_segment_and_never_counts_negative(store):
    start = utc("2026-11-24T18:00")
    before = burn("g1", start, start + 5 * HOUR, 50, every=600, kwh0=812.5)
    # Reflashed: the counter starts again from zero ten minutes after the last sample.
    after = burn("g1", start + 5 * HOUR + 600, start + 10 * HOUR, 50, every=600)
    store.ingest(before + after)
    r = er.report(store, start, start + 10 * HOUR, group="high-street")
    g1 = r.nodes[0]
    assert g1.resets == 1
    # 50 W for 10 h, less the one period (10 min) across the drop, which is unknown.
    assert g1.kwh == pytest.approx(0.050 * (10 * HOUR - 600) / HOUR)
    assert g1.coverage == pytest.approx((10 * HOUR - 600) / (10 * HOUR))


def test_a_node_without_telemetry_is_listed_with_zero_coverage(store):
    store.ingest(burn("g1", utc("2026-11-24T00:00"), utc("2026-11-25T00:00"), 25))
    r = er.report(store, utc("2026-11-24T00:00"), utc("2026-11-25T00:00"), site="greenwich")
    assert [n.name for n in r.nodes] == ["g1", "g2"]
    g2 = r.nodes[1]
    assert (g2.kwh, g2.coverage, g2.samples) == (0.0, 0.0, 0)
    assert g2.baseline_kwh > 0  # the whole baseline: the reader sees coverage 0
    assert r.sites[0].coverage == pytest.approx(0.5)
    j = r.as_json()["nodes"][1]
    assert j["name"] == "g2" and j["coverage"] == 0.0 and j["covered"]["saved_pct"] is None


def test_a_long_gap_inside_counts_its_energy_but_not_its_time(store):
    t = utc("2026-11-24T18:00")
    # Reporting 18:00-19:00, silent until 23:00 (the counter kept running), then to 01:00.
    store.ingest(
        burn("g1", t, t + HOUR, 30) + burn("g1", t + 5 * HOUR, t + 7 * HOUR, 30, kwh0=0.15)
    )
    r = er.report(store, t, t + 7 * HOUR, group="high-street")
    g1 = r.nodes[0]
    assert g1.kwh == pytest.approx(0.030 * 7)
    assert g1.coverage == pytest.approx(3 / 7)


def test_a_long_gap_across_an_end_is_left_out(store):
    t = utc("2026-11-24T18:00")
    # One sample an hour before `since`, the next 30 min after: more than the max gap.
    store.ingest([tele("g1", t - HOUR, 1.0), *burn("g1", t + 1800, t + 2 * HOUR, 40, kwh0=1.06)])
    r = er.report(store, t, t + 2 * HOUR, group="high-street")
    assert r.nodes[0].kwh == pytest.approx(0.040 * 1.5)
    assert r.nodes[0].coverage == pytest.approx(0.75)
    # With a max gap above 90 min, the straddling period is shared: 1/3 of it is inside.
    wide = er.report(store, t, t + 2 * HOUR, group="high-street", max_gap_s=2 * HOUR)
    assert wide.nodes[0].kwh == pytest.approx(0.040 * 1.5 + 0.06 / 3)


# -- the baseline ------------------------------------------------------------------------


@pytest.mark.parametrize("site", [GREENWICH, MILAN])
@pytest.mark.parametrize(
    "since, until",
    [
        ("2026-11-24T12:00", "2026-11-27T12:00"),  # three whole nights
        ("2026-11-24T22:00", "2026-11-25T20:00"),  # cut inside two nights
        ("2026-06-20T00:00", "2026-06-22T00:00"),  # short summer nights
    ],
)
def test_baseline_is_rated_power_from_sunset_to_sunrise_as_astral_says(site, since, until):
    a, b = utc(since), utc(until)
    hours = er.dark_seconds(site[0], site[1], a, b) / HOUR
    nights = max(1, round((b - a) / 86400))
    assert hours == pytest.approx(night_hours(*site, a, b), abs=nights * 2 / 60)


def test_baseline_in_the_report_uses_each_sites_own_nights(store):
    since, until = utc("2026-11-24T12:00"), utc("2026-11-26T12:00")
    r = er.report(store, since, until)
    by_name = {n.name: n for n in r.nodes}
    for name, rated, site in (("g1", 50, GREENWICH), ("g2", 40, GREENWICH), ("m1", 60, MILAN)):
        want = rated / 1000 * night_hours(*site, since, until)
        assert by_name[name].baseline_kwh == pytest.approx(want, abs=rated / 1000 * 4 / 60)
    assert r.total.baseline_kwh == pytest.approx(sum(n.baseline_kwh for n in r.nodes))


def test_baseline_is_the_one_schedule_preview_reports(repo):
    _, sched = schedules.load(repo / "docs" / "examples" / "schedule-greenwich.json")
    p = schedules.preview(sched, date(2026, 11, 25), *GREENWICH, rated_w=50)
    # The preview's night runs from local noon to noon (GMT in November).
    hours = er.dark_seconds(
        GREENWICH[0], GREENWICH[1], utc("2026-11-25T12:00"), utc("2026-11-26T12:00")
    )
    assert 0.050 * hours / HOUR == pytest.approx(p.baseline_kwh, abs=1e-4)


def test_polar_night_is_dark_all_day_and_polar_day_never():
    lat, lon, _ = TROMSO
    assert er.dark_seconds(lat, lon, utc("2026-12-15T00:00"), utc("2026-12-17T00:00")) == 2 * 86400
    assert er.dark_seconds(lat, lon, utc("2026-06-20T00:00"), utc("2026-06-22T00:00")) == 0


# -- sites, groups, totals, money --------------------------------------------------------


def test_sites_groups_and_total_add_up_their_nodes(store):
    since, until = utc("2026-11-24T12:00"), utc("2026-11-25T12:00")
    for node, watts in (("g1", 20), ("g2", 30), ("m1", 40)):
        store.ingest(burn(node, since - HOUR, until + HOUR, watts, every=120))
    r = er.report(store, since, until, price_per_kwh=0.4, co2_per_kwh=0.1)
    used = {n.name: n.kwh for n in r.nodes}
    assert used == pytest.approx({"g1": 0.48, "g2": 0.72, "m1": 0.96})
    assert [(s.name, s.nodes) for s in r.sites] == [("greenwich", 2), ("milan", 1)]
    assert r.sites[0].kwh == pytest.approx(1.2)
    assert [(g.name, g.nodes) for g in r.groups] == [("high-street", 2)]
    assert r.groups[0].kwh == pytest.approx(0.48 + 0.96)
    assert r.total.kwh == pytest.approx(2.16) and r.total.coverage == pytest.approx(1.0)
    t = r.as_json()["total"]
    saved = r.total.baseline_kwh - 2.16
    assert t["saved_kwh"] == pytest.approx(saved, abs=1e-4)
    assert t["saved_eur"] == pytest.approx(saved * 0.4, abs=0.005)
    assert t["saved_co2_kg"] == pytest.approx(saved * 0.1, abs=0.0005)
    assert t["saved_pct"] == pytest.approx(100 * saved / r.total.baseline_kwh, abs=0.05)


def test_a_site_report_counts_only_the_groups_members_at_that_site(store):
    since, until = utc("2026-11-24T12:00"), utc("2026-11-25T12:00")
    r = er.report(store, since, until, site="milan")
    assert [n.name for n in r.nodes] == ["m1"]
    assert [(g.name, g.nodes) for g in r.groups] == [("high-street", 1)]


def test_unknown_site_or_group_is_the_stores_error(store):
    with pytest.raises(StoreError, match="unknown site"):
        er.report(store, 0, 1, site="atlantis")
    with pytest.raises(UnknownGroup):
        er.report(store, 0, 1, group="nope")


@pytest.mark.parametrize(
    "text, want",
    [
        ("2026-11-24", "2026-11-24T00:00:00+00:00"),
        ("2026-11-24T18:00", "2026-11-24T18:00:00+00:00"),
        ("2026-11-24T18:00:00Z", "2026-11-24T18:00:00+00:00"),
        ("2026-11-24T18:00+01:00", "2026-11-24T17:00:00+00:00"),
    ],
)
def test_when_is_iso_and_naive_means_utc(text, want):
    assert er.parse_when(text) == datetime.fromisoformat(want).timestamp()


# -- the command -------------------------------------------------------------------------


@pytest.fixture
def db(store, tmp_path):
    since = utc("2026-11-24T12:00")
    store.ingest(burn("g1", since, since + 86400, 25))
    return str(tmp_path / "x.db")


def energy(db: str, *args: str):
    return CliRunner().invoke(cli, ["--db", db, "energy", "report", *args])


def test_cli_json_has_nodes_sites_groups_and_total(db):
    res = energy(db, "--since", "2026-11-24T12:00Z", "--until", "2026-11-25T12:00", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [n["name"] for n in out["nodes"]] == ["g1", "g2", "m1"]
    assert out["nodes"][0]["kwh"] == pytest.approx(0.6)
    assert [n["coverage"] for n in out["nodes"]] == [1.0, 0.0, 0.0]
    assert out["currency"] == "EUR" and out["price_per_kwh"] == 0.25
    assert out["co2_kg_per_kwh"] == 0.233
    assert out["baseline"] == "full rated power from sunset to sunrise"
    assert out["total"]["nodes"] == 3
    assert "2 of 3 nodes reported for less than 95 %" in res.stderr


def test_cli_table_shows_site_and_group_rows_and_a_total(db):
    res = energy(
        db, "--site", "greenwich", "--since", "2026-11-24T12:00", "--until", "2026-11-25T12:00",
        "--price-per-kwh", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "used kWh" in lines[1] and "coverage %" in lines[1]
    rows = {ln.split()[0]: ln.split() for ln in lines[3:]}
    assert rows["site"][1:4] == ["greenwich", "2", "0.600"]
    assert rows["group"][1:4] == ["high-street", "1", "0.600"]
    total = rows["total"]
    assert total[1:3] == ["2", "0.600"] and total[-1] == "50.0"
    assert abs(float(total[6]) - float(total[4])) < 0.006  # at 1 EUR/kWh, EUR = kWh saved


def test_cli_png_is_written_only_when_asked(db, tmp_path):
    png = tmp_path / "energy.png"
    res = energy(db, "--since", "2026-11-24", "--until", "2026-11-26")
    assert res.exit_code == 0 and not png.exists()
    res = energy(db, "--since", "2026-11-24", "--until", "2026-11-26", "--png", str(png))
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-11-24T25:00", "24/11/2026"])
def test_cli_malformed_date_is_one_line_and_exit_4(db, bad):
    res = energy(db, "--since", bad, "--until", "2026-11-26")
    assert res.exit_code == 4
    assert res.stderr.startswith("Error: --since:") and res.stderr.count("\n") == 1


def test_cli_until_not_after_since_is_exit_4(db):
    res = energy(db, "--since", "2026-11-25T00:00", "--until", "2026-11-25T00:00Z")
    assert res.exit_code == 4 and "not after" in res.stderr


@pytest.mark.parametrize("opt, name", [("--site", "atlantis"), ("--group", "nope")])
def test_cli_unknown_site_or_group_is_exit_3(db, opt, name):
    res = energy(db, opt, name, "--since", "2026-11-24", "--until", "2026-11-25")
    assert res.exit_code == 3
    assert name in res.stderr and "Traceback" not in res.output


def test_cli_site_and_group_together_is_a_usage_error(db):
    res = energy(
        db, "--site", "milan", "--group", "high-street", "--since", "2026-11-24", "--until",
        "2026-11-25",
    )  # fmt: skip
    assert res.exit_code == 2

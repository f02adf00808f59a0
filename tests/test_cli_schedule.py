"""`lanterna schedule validate|preview`: the firmware's schedule module under CPython."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from astral import LocationInfo
from astral.sun import sun
from click.testing import CliRunner

from lanterna.cli import cli

GREENWICH = ["--lat", "51.4826", "--lon", "0.0077"]


@pytest.fixture
def example(repo):
    return repo / "docs" / "examples" / "schedule-greenwich.json"


def _preview(example, *args):
    result = CliRunner().invoke(cli, ["schedule", "preview", str(example), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_validate_accepts_the_documented_example(example):
    result = CliRunner().invoke(cli, ["schedule", "validate", str(example)])
    assert result.exit_code == 0
    assert result.output.startswith("ok: schedule greenwich-2026: 3 profiles")


def test_validate_names_file_and_offending_path(example, tmp_path):
    obj = json.loads(example.read_text())
    obj["profiles"]["weekend"][1]["level"] = 120
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(obj))
    result = CliRunner().invoke(cli, ["schedule", "validate", str(bad)])
    assert result.exit_code == 4  # malformed input (docs/cli.md)
    assert result.output.strip() == (
        f"Error: {bad}: schedule: profiles.weekend[1].level: 120 outside 0..100"
    )
    bad.write_text('{"version": 1,')
    result = CliRunner().invoke(cli, ["schedule", "validate", str(bad)])
    assert result.exit_code == 4 and "not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_preview_json_shows_transitions_sun_and_energy(example):
    out = _preview(example, "--date", "2026-11-25", *GREENWICH, "--tz", "Europe/London")
    assert out["profile"] == "weeknight" and out["start_level"] == 0
    levels = [t["level"] for t in out["transitions"]]
    assert levels == [100, 70, 40, 70, 0]
    times = [datetime.fromisoformat(t["time"]) for t in out["transitions"]]
    assert times == sorted(times) and all(t.utcoffset().total_seconds() == 0 for t in times)
    assert [t.strftime("%H:%M") for t in times[1:3]] == ["22:30", "00:30"]
    # the morning's 70 % an hour before sunrise, off ten minutes after it
    sunrise = datetime.fromisoformat(out["sun"]["sunrise"])
    assert times[3] == sunrise - timedelta(minutes=60)
    assert times[4] == sunrise + timedelta(minutes=10)
    # Sun events agree with an independent oracle (astral), within a minute.
    s = sun(
        LocationInfo("g", "uk", "Europe/London", 51.4826, 0.0077).observer, date=date(2026, 11, 25)
    )
    sunset = datetime.fromisoformat(out["sun"]["sunset"])
    assert abs((sunset - s["sunset"]).total_seconds()) < 60
    assert abs((times[0] - s["sunset"]).total_seconds() + 600) < 60  # sunset - 10 min
    e = out["energy"]
    assert 0 < e["kwh"] < e["baseline_kwh"] and 0 < e["saving_pct"] < 100


def test_preview_is_the_same_with_iana_or_posix_zone(example):
    a = _preview(example, "--date", "2026-07-01", *GREENWICH, "--tz", "Europe/London")
    b = _preview(example, "--date", "2026-07-01", *GREENWICH, "--tz", "GMT0BST,M3.5.0/1,M10.5.0")
    assert a == b
    assert a["transitions"][0]["time"].endswith("+01:00")  # BST in July


def test_preview_in_polar_night_reports_no_sun(example):
    out = _preview(
        example, "--date", "2026-12-15", "--lat", "69.65", "--lon", "18.96", "--tz", "Europe/Oslo"
    )
    assert out["sun"]["sunset"] is None and out["sun"]["sunrise"] is None
    assert out["sun"]["dusk"] is not None  # civil twilight still happens at 69.65 N
    assert out["start_level"] == 100 or out["transitions"][0]["level"] == 100


def _invoke_preview(example, tz, *extra):
    return CliRunner().invoke(
        cli,
        [
            "schedule",
            "preview",
            str(example),
            "--date",
            "2026-11-25",
            *GREENWICH,
            "--tz",
            tz,
            *extra,
        ],
    )


def test_preview_draws_a_png(example, tmp_path):
    png = tmp_path / "night.png"
    result = _invoke_preview(example, "Europe/London", "--png", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preview_refuses_an_unknown_zone(example):
    result = _invoke_preview(example, "Mars/Olympus")
    assert result.exit_code == 4
    assert "time zone 'Mars/Olympus'" in result.output and "Traceback" not in result.output

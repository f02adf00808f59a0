"""Schedules on the controller: validate and preview with the firmware's own code.

``lamp.schedule`` is imported under CPython, so a preview shows exactly what the poles
will do on that night, transition by transition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lamp import astro
from lamp import schedule as fwsched
from lanterna.errors import Malformed
from lanterna.tzinfo import zone as make_zone

DAY = 86400


class ScheduleFileError(Malformed, ValueError):
    pass


def load(path: Path) -> tuple[dict, fwsched.Schedule]:
    """Read and validate a schedule file; errors name the file and the offending path."""
    try:
        obj = json.loads(path.read_text())
    except OSError as e:
        raise ScheduleFileError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ScheduleFileError(f"{path}: not valid JSON: {e}") from None
    try:
        return obj, fwsched.parse(obj)
    except fwsched.ScheduleError as e:
        raise ScheduleFileError(f"{path}: {e}") from None


def local_iso(utc: int, zone) -> str:
    tzinfo = timezone(timedelta(seconds=zone.offset(utc)))
    return datetime.fromtimestamp(utc, tzinfo).isoformat()


def default_rated_w() -> int:
    from lamp import energy

    default = energy.SPEC["rated_power_w"][0]
    assert isinstance(default, int)
    return default


def power_w(level: int, rated_w: int) -> float:
    """Input power at a level, by the node's own energy model (lamp.energy): the light
    output through the CIE 1931 curve, the driver's floor, no draw with the relay open."""
    from lamp import energy
    from lamp.dimmer import cie_duty

    cfg = energy.config({"rated_power_w": rated_w})
    light = cie_duty(level, 16) * 10000 // 65535
    return energy.model_mw(cfg, level > 0, light) / 1000


@dataclass
class Preview:
    schedule_id: str
    date: date
    profile: str
    tz: str
    sun: dict[str, str | None]
    start_level: int
    transitions: list[dict[str, Any]]
    levels: list[tuple[int, int]]  # (utc, level) from local noon to noon, for plotting
    kwh: float
    baseline_kwh: float
    rated_w: int

    def as_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule_id,
            "date": self.date.isoformat(),
            "profile": self.profile,
            "tz": self.tz,
            "sun": self.sun,
            "start_level": self.start_level,
            "transitions": self.transitions,
            "energy": {
                "kwh": round(self.kwh, 4),
                "baseline_kwh": round(self.baseline_kwh, 4),
                "saving_pct": round(100 * (1 - self.kwh / self.baseline_kwh), 1)
                if self.baseline_kwh
                else None,
                "rated_w": self.rated_w,
                "baseline": "full power from sunset to sunrise",
            },
        }


def _sun_iso(day: int, lat: float, lon: float, zone, elevation: float, evening: bool):
    y, m, d = (date(1970, 1, 1) + timedelta(days=day)).timetuple()[:3]
    status, rise, sset = astro.sun(y, m, d, lat, lon, elevation)
    if status != astro.NORMAL:
        return None, None
    utc = day * DAY + int((sset if evening else rise) * 60)
    return local_iso(utc, zone), utc


def preview(
    sched: fwsched.Schedule,
    night: date,
    lat: float,
    lon: float,
    tz: str,
    rated_w: int | None = None,
) -> Preview:
    from lanterna.tzinfo import posix_tz

    rated_w = rated_w or default_rated_w()
    posix = posix_tz(tz)
    zone = make_zone(posix)
    plan = fwsched.Plan(sched, zone, lat, lon)
    day = (night - date(1970, 1, 1)).days
    start_level, changes = plan.transitions(day)
    start = zone.utc(day * DAY + DAY // 2)
    end = zone.utc((day + 1) * DAY + DAY // 2)
    levels = [(start, start_level)] + changes
    # Energy over the night at the rated power scaled by light output.
    wh = 0.0
    for (t0, lvl), (t1, _) in zip(levels, levels[1:] + [(end, 0)], strict=True):
        wh += power_w(lvl, rated_w) * (t1 - t0) / 3600
    sunset_iso, sunset = _sun_iso(day, lat, lon, zone, -0.833, True)
    sunrise_iso, sunrise = _sun_iso(day + 1, lat, lon, zone, -0.833, False)
    dusk_iso, _ = _sun_iso(day, lat, lon, zone, -6.0, True)
    dawn_iso, _ = _sun_iso(day + 1, lat, lon, zone, -6.0, False)
    if sunset is not None and sunrise is not None:
        baseline_s = sunrise - sunset
    else:  # polar: night all day or no night at all
        status = astro.sun(night.year, night.month, night.day, lat, lon, -0.833)[0]
        baseline_s = end - start if status == astro.POLAR_NIGHT else 0
    return Preview(
        schedule_id=sched.id,
        date=night,
        profile=plan.night(day)[0],
        tz=posix,
        sun={"sunset": sunset_iso, "dusk": dusk_iso, "dawn": dawn_iso, "sunrise": sunrise_iso},
        start_level=start_level,
        transitions=[{"time": local_iso(t, zone), "level": lvl} for t, lvl in changes],
        levels=levels + [(end, levels[-1][1])],
        kwh=wh / 1000,
        baseline_kwh=rated_w * baseline_s / 3600 / 1000,
        rated_w=rated_w,
    )


def plot(p: Preview, out: Path) -> None:
    """Level over the night as a step chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    zone = make_zone(p.tz)
    # Local wall-clock times (naive), so the axis reads as the street's clock.
    xs = mdates.date2num(
        [datetime.fromtimestamp(zone.local(t), UTC).replace(tzinfo=None) for t, _ in p.levels]
    )
    ys = [lvl for _, lvl in p.levels]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.step(xs, ys, where="post", color="#d08a00")
    ax.fill_between(xs, ys, step="post", alpha=0.25, color="#f0b400")
    ax.set_ylim(0, 105)
    ax.set_ylabel("level %")
    ax.set_title(
        f"{p.schedule_id}: night of {p.date} ({p.profile}), {p.kwh:.3f} kWh "
        f"vs {p.baseline_kwh:.3f} kWh full power"
    )
    ax.xaxis.set_major_locator(mdates.HourLocator(interval=2))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlabel("local time")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)

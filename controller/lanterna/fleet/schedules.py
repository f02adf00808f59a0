"""Schedules on the controller: validate and preview with the firmware's own code.

``lamp.schedule`` is imported under CPython, so a preview shows exactly what the poles
will do on that night, transition by transition; ``year()`` adds up every night of a
year the same way, in kWh, EUR and kg CO2 against full power from sunset to sunrise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lamp import astro
from lamp import schedule as fwsched
from lanterna.errors import Malformed
from lanterna.fleet import energy as er
from lanterna.tzinfo import zone as make_zone

DAY = 86400
SUNRISE_ELEVATION = er.SUNRISE_ELEVATION  # the NOAA sunrise: one baseline with the energy report
BASELINE = "full power from sunset to sunrise"


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
                "baseline": BASELINE,
            },
        }


def _ymd(day: int) -> tuple[int, int, int]:
    d = date(1970, 1, 1) + timedelta(days=day)
    return d.year, d.month, d.day


def _sun_iso(day: int, lat: float, lon: float, zone, elevation: float, evening: bool):
    status, rise, sset = astro.sun(*_ymd(day), lat, lon, elevation)
    if status != astro.NORMAL:
        return None, None
    utc = day * DAY + int((sset if evening else rise) * 60)
    return local_iso(utc, zone), utc


def _night(plan: fwsched.Plan, zone, day: int, watts: Callable[[int], float]):
    """The night of local date `day` (noon to noon) by the node's own Plan: its levels
    [(utc, level)] from noon on, the UTC instant it ends, and the Wh drawn at watts(level)."""
    start_level, changes = plan.transitions(day)
    start = zone.utc(day * DAY + DAY // 2)
    end = zone.utc((day + 1) * DAY + DAY // 2)
    levels = [(start, start_level)] + changes
    wh = 0.0
    for (t0, lvl), (t1, _) in zip(levels, levels[1:] + [(end, 0)], strict=True):
        wh += watts(lvl) * (t1 - t0) / 3600
    return levels, end, wh


def _baseline_s(sun_at: Callable[[int], tuple], day: int, start: int, end: int) -> int:
    """Seconds of full power on the night of `day`: sunset to the next sunrise. In polar
    night the whole night (noon to noon), in polar day none. sun_at(day) is lamp.astro.sun
    at the horizon for that date; this is the one baseline of preview() and year()."""
    status, _, sset = sun_at(day)
    status_next, rise, _ = sun_at(day + 1)
    if status == astro.NORMAL and status_next == astro.NORMAL:
        return (day + 1) * DAY + int(rise * 60) - (day * DAY + int(sset * 60))
    return end - start if status == astro.POLAR_NIGHT else 0


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
    levels, end, wh = _night(plan, zone, day, lambda lvl: power_w(lvl, rated_w))
    start, start_level = levels[0]
    changes = levels[1:]
    sunset_iso, _ = _sun_iso(day, lat, lon, zone, SUNRISE_ELEVATION, True)
    sunrise_iso, _ = _sun_iso(day + 1, lat, lon, zone, SUNRISE_ELEVATION, False)
    dusk_iso, _ = _sun_iso(day, lat, lon, zone, -6.0, True)
    dawn_iso, _ = _sun_iso(day + 1, lat, lon, zone, -6.0, False)
    baseline_s = _baseline_s(
        lambda d: astro.sun(*_ymd(d), lat, lon, SUNRISE_ELEVATION), day, start, end
    )
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


# -- a year ------------------------------------------------------------------------------


@dataclass(frozen=True)
class YearNight:
    date: date  # the evening the night starts on
    profile: str
    kwh: float
    baseline_kwh: float
    against_kwh: float | None = None


def _totals(kwh: float, baseline_kwh: float, price: float, co2: float) -> dict[str, Any]:
    saved = baseline_kwh - kwh
    return {
        "kwh": round(kwh, 3),
        "baseline_kwh": round(baseline_kwh, 3),
        "saved_kwh": round(saved, 3),
        "saving_pct": round(100 * saved / baseline_kwh, 1) if baseline_kwh else None,
        "eur": round(kwh * price, 2),
        "baseline_eur": round(baseline_kwh * price, 2),
        "saved_eur": round(saved * price, 2),
        "co2_kg": round(kwh * co2, 2),
        "baseline_co2_kg": round(baseline_kwh * co2, 2),
        "saved_co2_kg": round(saved * co2, 2),
    }


@dataclass
class YearPreview:
    """Every night of a year at a site, by the node's own code (as preview() does each)."""

    schedule_id: str
    year: int
    tz: str
    rated_w: int
    price_eur_kwh: float
    co2_kg_kwh: float
    nights: list[YearNight] = field(default_factory=list)
    against_id: str | None = None

    @property
    def kwh(self) -> float:
        return sum(n.kwh for n in self.nights)

    @property
    def baseline_kwh(self) -> float:
        return sum(n.baseline_kwh for n in self.nights)

    @property
    def against_kwh(self) -> float | None:
        if self.against_id is None:
            return None
        return sum(n.against_kwh or 0.0 for n in self.nights)

    def months(self) -> list[dict[str, Any]]:
        """Sums per month of the nights' evenings (unrounded)."""
        out: dict[str, dict[str, Any]] = {}
        for n in self.nights:
            key = n.date.strftime("%Y-%m")
            m = out.setdefault(key, {"month": key, "kwh": 0.0, "baseline_kwh": 0.0})
            m["kwh"] += n.kwh
            m["baseline_kwh"] += n.baseline_kwh
            if n.against_kwh is not None:
                m["against_kwh"] = m.get("against_kwh", 0.0) + n.against_kwh
        return list(out.values())

    def totals(self, kwh: float | None = None) -> dict[str, Any]:
        """The year's figures for `kwh` (default: this schedule's) against the baseline."""
        used = self.kwh if kwh is None else kwh
        return _totals(used, self.baseline_kwh, self.price_eur_kwh, self.co2_kg_kwh)

    def as_json(self) -> dict[str, Any]:
        nights = []
        for n in self.nights:
            row = {
                "date": n.date.isoformat(),
                "profile": n.profile,
                "kwh": round(n.kwh, 3),
                "baseline_kwh": round(n.baseline_kwh, 3),
            }
            if n.against_kwh is not None:
                row["against_kwh"] = round(n.against_kwh, 3)
            nights.append(row)
        against = self.against_kwh
        return {
            "schedule": self.schedule_id,
            "year": self.year,
            "tz": self.tz,
            "rated_w": self.rated_w,
            "price_eur_kwh": self.price_eur_kwh,
            "co2_kg_kwh": self.co2_kg_kwh,
            "baseline": BASELINE,
            "nights": nights,
            "totals": self.totals(),
            "against": None
            if against is None
            else {"schedule": self.against_id, "totals": self.totals(against)},
            "months": [
                {k: v if k == "month" else round(v, 3) for k, v in m.items()} for m in self.months()
            ],
        }


def year(
    sched: fwsched.Schedule,
    year: int,
    lat: float,
    lon: float,
    tz: str,
    rated_w: int | None = None,
    price: float | None = None,
    co2: float | None = None,
    against: fwsched.Schedule | None = None,
) -> YearPreview:
    """Every night of `year` (365 or 366, by the date of the evening) as preview() computes
    one, with `against` (another schedule) side by side. price: EUR per kWh, co2: kg CO2
    per kWh; by default those of the energy report (lanterna.fleet.energy)."""
    from lanterna.tzinfo import posix_tz

    rated_w = rated_w or default_rated_w()
    posix = posix_tz(tz)
    zone = make_zone(posix)
    # One Plan per schedule for the whole year, walked in date order: its cache of recent
    # nights then holds the neighbours each night looks back on.
    plans = [fwsched.Plan(s, zone, lat, lon) for s in (sched, against) if s is not None]
    watts = [power_w(lvl, rated_w) for lvl in range(101)]
    suns: dict[int, tuple] = {}

    def sun_at(day: int) -> tuple:
        got = suns.get(day)
        if got is None:
            got = suns[day] = astro.sun(*_ymd(day), lat, lon, SUNRISE_ELEVATION)
        return got

    first = (date(year, 1, 1) - date(1970, 1, 1)).days
    last = (date(year, 12, 31) - date(1970, 1, 1)).days
    out = YearPreview(
        schedule_id=sched.id,
        year=year,
        tz=posix,
        rated_w=rated_w,
        price_eur_kwh=er.PRICE_PER_KWH if price is None else price,
        co2_kg_kwh=er.CO2_PER_KWH if co2 is None else co2,
        against_id=None if against is None else against.id,
    )
    for day in range(first, last + 1):
        levels, end, wh = _night(plans[0], zone, day, watts.__getitem__)
        other = _night(plans[1], zone, day, watts.__getitem__)[2] if against else None
        out.nights.append(
            YearNight(
                date=date(1970, 1, 1) + timedelta(days=day),
                profile=plans[0].night(day)[0],
                kwh=wh / 1000,
                baseline_kwh=rated_w * _baseline_s(sun_at, day, levels[0][0], end) / 3600 / 1000,
                against_kwh=None if other is None else other / 1000,
            )
        )
    return out


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


def plot_year(y: YearPreview, out: Path) -> None:
    """kWh per month: the schedule, the one it is set against, full power (PNG bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    months = y.months()
    series = [(y.schedule_id, "kwh", "#d08a00")]
    if y.against_id is not None:
        series.append((y.against_id, "against_kwh", "#3a7bbf"))
    series.append(("full power, sunset to sunrise", "baseline_kwh", "#9a9a9a"))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (label, key, colour) in enumerate(series):
        xs = [n + (i - (len(series) - 1) / 2) * width for n in range(len(months))]
        ax.bar(xs, [m.get(key, 0.0) for m in months], width, label=label, color=colour)
    ax.set_xticks(range(len(months)), [m["month"][5:] for m in months])
    ax.set_xlabel(f"month of {y.year} (night by its evening)")
    ax.set_ylabel(f"kWh per {y.rated_w} W lamp")
    t = y.totals()
    ax.set_title(
        f"{y.schedule_id} in {y.year}: {t['kwh']:.1f} kWh vs {t['baseline_kwh']:.1f} kWh "
        f"full power ({t['saved_eur']:.2f} EUR, {t['saved_co2_kg']:.1f} kg CO2 saved)"
    )
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)

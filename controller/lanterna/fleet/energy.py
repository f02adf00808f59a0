"""Energy report: what the lamps used against a full-power, sunset-to-sunrise baseline.

The numbers come from each lamp's own cumulative energy counter (``energy.kwh`` in its
telemetry, docs/energy.md), so the report is only as complete as the telemetry the
store holds; ``coverage`` says how complete that is. docs/energy-report.md explains
every figure; in short:

- used: the sum of the counter's rises between consecutive samples. A counter that
  goes down (node reflashed, or rolled back to its last flash save after a power cut)
  starts a new segment: the sample period spanning the drop adds nothing, never
  negative energy. A sample period that straddles ``since`` or ``until`` is shared out
  in proportion to the time on each side, if it is no longer than ``max_gap_s``; a
  longer one is left out (nothing says when in it the energy was used).
- baseline: the node's rated power for every second between sunset and sunrise in the
  interval, at the site's lat/lon: the very baseline ``lanterna schedule preview``
  reports ("full power from sunset to sunrise"), from the firmware's ``lamp.astro``.
- coverage: the fraction of the interval inside sample periods of at most
  ``max_gap_s`` (the node was reporting). Energy across a longer gap still counts, the
  counter kept running, but that time is not covered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lamp import astro
from lamp.tz import civil
from lanterna.store.db import Node, Store

DAY = 86400
SUNRISE_ELEVATION = -0.833  # as schedules.preview: the NOAA sunrise (lamp.astro.sun)
BASELINE = "full rated power from sunset to sunrise"
CURRENCY = "EUR"
PRICE_PER_KWH = 0.25  # EUR/kWh: a configurable default; put your tariff in
CO2_PER_KWH = 0.233  # kg CO2 per kWh: a configurable default; grids differ by country and year
MAX_GAP_S = 900.0  # 15 telemetry periods at the node's default tele_s of 60 s


def parse_when(text: str) -> float:
    """An ISO 8601 date or date-time -> epoch seconds. A date is its midnight; a time
    without Z or an offset is UTC. Raises ValueError naming the text."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date or date-time (2026-11-24, 2026-11-24T18:00, "
            "2026-11-24T18:00+01:00)"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


# -- the sun -----------------------------------------------------------------------------


def light_spans(lat: float, lon: float, since: float, until: float) -> list[tuple[float, float]]:
    """Daylight (sunrise to sunset, UTC epoch), merged and sorted, around [since, until].

    lamp.astro.sun(date) answers for the solar day around that date's local mean noon
    (minutes from its 00:00 UTC, maybe < 0 or >= 1440 far from Greenwich), so a UTC
    date numbers the site's own days and the time zone plays no part: the interval is
    in absolute instants. A polar day is light from local mean midnight to midnight.
    """
    spans = []
    for day in range(int(since // DAY) - 2, int(until // DAY) + 3):
        y, m, d = civil(day * DAY)[:3]
        status, rise, sset = astro.sun(y, m, d, lat, lon, SUNRISE_ELEVATION)
        if status == astro.NORMAL:
            spans.append((day * DAY + rise * 60, day * DAY + sset * 60))
        elif status == astro.POLAR_DAY:
            # Local mean midnight to midnight: 4 min of time per degree of longitude. One
            # expression for both ends, so consecutive polar days meet exactly.
            spans.append((day * DAY - lon * 240, (day + 1) * DAY - lon * 240))
    return _merge(spans)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def dark_in(light: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] outside the daylight spans."""
    lit = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in light)
    return (hi - lo) - lit


def dark_seconds(lat: float, lon: float, since: float, until: float) -> float:
    """Seconds between sunset and sunrise within [since, until] at lat/lon."""
    return dark_in(light_spans(lat, lon, since, until), since, until)


# -- one node's counter ------------------------------------------------------------------


@dataclass(frozen=True)
class Counter:
    kwh: float  # used in the interval
    spans: list[tuple[float, float]]  # the covered time, merged
    covered_kwh: float  # the part of kwh used in the covered time
    samples: int  # inside the interval
    resets: int  # counter drops seen in the interval

    @property
    def covered_s(self) -> float:
        return sum(b - a for a, b in self.spans)


def counter_energy(
    series: list[tuple[float, float | None, int | None]],
    since: float,
    until: float,
    max_gap_s: float = MAX_GAP_S,
) -> Counter:
    """Energy and coverage from (ts, kwh, level) rows, oldest first, which may reach up
    to max_gap_s beyond either end of the interval (to share the straddling periods)."""
    rows = [(ts, kwh) for ts, kwh, _ in series if kwh is not None]
    kwh = covered_kwh = 0.0
    spans: list[tuple[float, float]] = []
    resets = 0
    for (t0, k0), (t1, k1) in zip(rows, rows[1:], strict=False):
        lo, hi = max(t0, since), min(t1, until)
        if hi <= lo:  # outside the interval, or two samples with one timestamp
            continue
        if k1 < k0:
            resets += 1
            continue
        span = t1 - t0
        if span > max_gap_s:
            if hi - lo < span:
                continue  # a long gap across an end: no telling which side used it
            kwh += k1 - k0
            continue
        share = (k1 - k0) * (hi - lo) / span
        kwh += share
        covered_kwh += share
        if spans and spans[-1][1] == lo:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    samples = sum(1 for ts, _ in rows if since <= ts <= until)
    return Counter(kwh, spans, covered_kwh, samples, resets)


# -- the report --------------------------------------------------------------------------


@dataclass
class Tally:
    """Energy of some nodes over the interval; coverage counts node-seconds."""

    name: str
    nodes: int = 0
    kwh: float = 0.0
    baseline_kwh: float = 0.0
    covered_s: float = 0.0
    span_s: float = 0.0  # nodes x the interval
    # The same over the covered time only: an honest saving rate where data is missing.
    covered_kwh: float = 0.0
    covered_baseline_kwh: float = 0.0

    def add(self, other: Tally) -> None:
        self.nodes += other.nodes
        self.kwh += other.kwh
        self.baseline_kwh += other.baseline_kwh
        self.covered_s += other.covered_s
        self.span_s += other.span_s
        self.covered_kwh += other.covered_kwh
        self.covered_baseline_kwh += other.covered_baseline_kwh

    @property
    def saved_kwh(self) -> float:
        return self.baseline_kwh - self.kwh

    @property
    def saved_pct(self) -> float | None:
        return _pct(self.saved_kwh, self.baseline_kwh)

    @property
    def coverage(self) -> float:
        return self.covered_s / self.span_s if self.span_s else 0.0

    def as_json(self, price: float, co2: float) -> dict[str, Any]:
        pct = self.saved_pct
        covered_pct = _pct(self.covered_baseline_kwh - self.covered_kwh, self.covered_baseline_kwh)
        return {
            "name": self.name,
            "nodes": self.nodes,
            "kwh": round(self.kwh, 4),
            "baseline_kwh": round(self.baseline_kwh, 4),
            "saved_kwh": round(self.saved_kwh, 4),
            "saved_pct": None if pct is None else round(pct, 1),
            "saved_eur": round(self.saved_kwh * price, 2),
            "saved_co2_kg": round(self.saved_kwh * co2, 3),
            "coverage": round(self.coverage, 4),
            "covered": {
                "kwh": round(self.covered_kwh, 4),
                "baseline_kwh": round(self.covered_baseline_kwh, 4),
                "saved_pct": None if covered_pct is None else round(covered_pct, 1),
            },
        }


def _pct(part: float, whole: float) -> float | None:
    return 100 * part / whole if whole else None


@dataclass
class NodeEnergy(Tally):
    site: str = ""
    groups: tuple[str, ...] = ()
    rated_w: float = 0.0
    dark_h: float = 0.0
    samples: int = 0
    resets: int = 0

    def as_json(self, price: float, co2: float) -> dict[str, Any]:
        out = super().as_json(price, co2)
        out.update(
            site=self.site,
            groups=list(self.groups),
            rated_w=self.rated_w,
            dark_h=round(self.dark_h, 3),
            samples=self.samples,
            resets=self.resets,
        )
        return out


@dataclass
class Report:
    since: float
    until: float
    site: str | None
    group: str | None
    price_per_kwh: float
    co2_per_kwh: float
    max_gap_s: float
    nodes: list[NodeEnergy]
    sites: list[Tally] = field(default_factory=list)
    groups: list[Tally] = field(default_factory=list)
    total: Tally = field(default_factory=lambda: Tally("total"))

    def rows(self, tallies: Sequence[Tally]) -> list[dict[str, Any]]:
        return [t.as_json(self.price_per_kwh, self.co2_per_kwh) for t in tallies]

    def as_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "site": self.site,
            "group": self.group,
            "baseline": BASELINE,
            "currency": CURRENCY,
            "price_per_kwh": self.price_per_kwh,
            "co2_kg_per_kwh": self.co2_per_kwh,
            "max_gap_s": self.max_gap_s,
            "nodes": self.rows(self.nodes),
            "sites": self.rows(self.sites),
            "groups": self.rows(self.groups),
            "total": self.total.as_json(self.price_per_kwh, self.co2_per_kwh),
        }


def report(
    store: Store,
    since: float,
    until: float,
    site: str | None = None,
    group: str | None = None,
    price_per_kwh: float = PRICE_PER_KWH,
    co2_per_kwh: float = CO2_PER_KWH,
    max_gap_s: float = MAX_GAP_S,
) -> Report:
    """The report for the nodes of `site` or `group` (all nodes without either) from
    `since` to `until` (epoch s). Unknown site or group: the store's StoreError."""
    if until <= since:
        raise ValueError("until must be after since")
    selected: list[Node] = store.nodes(site=site, group=group)
    sites = {s["name"]: s for s in store.sites()}
    light: dict[str, list[tuple[float, float]]] = {}
    nodes = []
    for n in selected:
        if n.site not in light:
            s = sites[n.site]
            light[n.site] = light_spans(s["lat"], s["lon"], since, until)
        kw = n.rated_w / 1000
        dark_s = dark_in(light[n.site], since, until)
        series = store.energy_series(n.id, since - max_gap_s, until + max_gap_s)
        c = counter_energy(series, since, until, max_gap_s)
        covered_dark_s = sum(dark_in(light[n.site], a, b) for a, b in c.spans)
        nodes.append(
            NodeEnergy(
                name=n.id,
                nodes=1,
                kwh=c.kwh,
                baseline_kwh=kw * dark_s / 3600,
                covered_s=c.covered_s,
                span_s=until - since,
                covered_kwh=c.covered_kwh,
                covered_baseline_kwh=kw * covered_dark_s / 3600,
                site=n.site,
                groups=n.groups,
                rated_w=n.rated_w,
                dark_h=dark_s / 3600,
                samples=c.samples,
                resets=c.resets,
            )
        )
    r = Report(since, until, site, group, price_per_kwh, co2_per_kwh, max_gap_s, nodes)
    by_site: dict[str, Tally] = {}
    # A group's figures are those of its members in the selection; asked for by name,
    # a group is listed even with no members.
    by_group: dict[str, Tally] = {group: Tally(group)} if group is not None else {}
    for ne in nodes:
        by_site.setdefault(ne.site, Tally(ne.site)).add(ne)
        for g in ne.groups if group is None else (group,):
            by_group.setdefault(g, Tally(g)).add(ne)
        r.total.add(ne)
    r.sites = [by_site[k] for k in sorted(by_site)]
    r.groups = [by_group[k] for k in sorted(by_group)]
    return r


def plot(r: Report, out: Path) -> None:
    """Used vs baseline kWh per site and per group as bars, the savings written above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(title, rows) for title, rows in (("site", r.sites), ("group", r.groups)) if rows]
    if not panels:
        panels = [("total", [r.total])]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4 + 2.2 * sum(len(p[1]) for p in panels), 4.5), squeeze=False
    )
    for ax, (title, rows) in zip(axes[0], panels, strict=True):
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [t.baseline_kwh for t in rows], 0.4, color="#9a9a9a")
        ax.bar([x + 0.2 for x in xs], [t.kwh for t in rows], 0.4, color="#e0a000")
        top = max([t.baseline_kwh for t in rows] + [t.kwh for t in rows] + [1e-9])
        for x, t in zip(xs, rows, strict=True):
            pct = t.saved_pct
            label = f"saved {t.saved_kwh:.2f} kWh" + ("" if pct is None else f"\n{pct:.0f} %")
            if t.coverage < 0.999:
                label += f"\ncoverage {100 * t.coverage:.0f} %"
            ax.text(x, max(t.baseline_kwh, t.kwh) + top * 0.02, label, ha="center", va="bottom")
        ax.set_xticks(list(xs), [t.name for t in rows])
        ax.set_xlim(-0.8, len(rows) - 0.2)
        ax.set_ylim(0, top * 1.35)
        ax.set_ylabel("kWh")
        ax.set_title(f"by {title}" if title != "total" else "total")
        ax.grid(axis="y", alpha=0.3)
    handles = axes[0][0].containers[:2]
    fig.legend(handles, [f"baseline ({BASELINE})", "used"], loc="lower center", ncol=2)
    fig.suptitle(f"energy {iso(r.since)} to {iso(r.until)}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, dpi=100)
    plt.close(fig)

"""Open data for the city's portal: the fleet as GeoJSON (RFC 7946), one Point feature per
node with its Streetlight properties (the bridge's own mapping, key-values form), and
telemetry or energy as CSV. Both are written as they are read, a page at a time, so an
export of a quarter of a million nodes or a month of telemetry holds one page in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from lanterna.bridge import ngsi, source
from lanterna.store import Store
from lanterna.store import tele as tele_codec

PAGE = 5000
TELE_FIELDS = (
    "node", "site", "ts", "level", "kwh", "power_w", "burn_h",
    "temperature_degc", "relative_humidity_pct", "pm2_5_ugm3", "pm10_ugm3", "co2_ppm",
    "ev_status",
)  # fmt: skip


def feature(n: source.NodeLatest) -> dict[str, Any]:
    kv = ngsi.keyvalues(ngsi.streetlight(n))
    geometry = kv.pop("location")
    fid = kv.pop("id")
    kv.pop("type")
    return {
        "type": "Feature",
        "id": fid,
        "geometry": geometry,
        "properties": {"node": n.node, "site": n.site, "groups": list(n.groups), **kv},
    }


def geojson(store: Store, out: IO[str], site: str | None = None) -> int:
    """Write a FeatureCollection; -> the features written."""
    out.write('{"type": "FeatureCollection", "features": [\n')
    count = 0
    for page in source.nodes(store, site=site):
        for n in page:
            out.write((",\n" if count else "") + json.dumps(feature(n), separators=(",", ":")))
            count += 1
    out.write("\n]}\n")
    return count


def telemetry_rows(
    store: Store, since: float, until: float, site: str | None = None
) -> Iterator[dict[str, Any]]:
    """Telemetry in [since, until) in (node, ts) order, read in keyset pages."""
    last = ("", -1.0)
    while True:
        where = "t.ts >= ? AND t.ts < ? AND (t.node > ? OR (t.node = ? AND t.ts > ?))"
        args: list[Any] = [since, until, last[0], last[0], last[1]]
        if site is not None:
            where += " AND n.site = ?"
            args.append(site)
        rows = list(
            store.db.execute(
                "SELECT t.node, n.site, t.ts, t.level, t.kwh, t.power_w, t.heap_free, t.rest"
                f" FROM telemetry t JOIN nodes n ON n.id=t.node WHERE {where}"
                " ORDER BY t.node, t.ts LIMIT ?",
                [*args, PAGE],
            )
        )
        for r in rows:
            p = tele_codec.join(r[2], r[3], r[4], r[5], r[6], tele_codec.unpack(r[7]))
            yield _tele_csv(r[0], r[1], r[2], p)
        if len(rows) < PAGE:
            return
        last = (rows[-1][0], float(rows[-1][2]))


def _tele_csv(node: str, site: str, ts: float, p: dict[str, Any]) -> dict[str, Any]:
    e: dict[str, Any] = p["energy"] if isinstance(p.get("energy"), dict) else {}
    n = source.NodeLatest(node, site, 0.0, 0.0, 0.0, tele=p, tele_at=ts)
    air = ngsi.air_quality(n) or {}
    ev: dict[str, Any] = p["evse"] if isinstance(p.get("evse"), dict) else {}

    def a(k: str, scale: float = 1) -> Any:
        v = air.get(k, {}).get("value")
        return "" if v is None else round(v * scale, 3)

    return {
        "node": node,
        "site": site,
        "ts": ngsi.iso(ts),
        "level": p.get("level", ""),
        "kwh": e.get("kwh", ""),
        "power_w": e.get("power_w", ""),
        "burn_h": e.get("burn_h", ""),
        "temperature_degc": a("temperature"),
        "relative_humidity_pct": a("relativeHumidity", 100),
        "pm2_5_ugm3": a("pm25"),
        "pm10_ugm3": a("pm10"),
        "co2_ppm": a("co2"),
        "ev_status": ev.get("status", "") if ev.get("present") else "",
    }


def telemetry_csv(
    store: Store, out: IO[str], since: float, until: float, site: str | None = None
) -> int:
    w = csv.DictWriter(out, TELE_FIELDS, lineterminator="\n")
    w.writeheader()
    count = 0
    for row in telemetry_rows(store, since, until, site):
        w.writerow(row)
        count += 1
    return count


ENERGY_FIELDS = (
    "node", "site", "groups", "since", "until", "kwh", "baseline_kwh", "saved_kwh",
    "saved_eur", "saved_co2_kg", "coverage",
)  # fmt: skip


def energy_csv(
    store: Store, out: IO[str], since: float, until: float, site: str | None = None
) -> int:
    """The energy report per node (lanterna.fleet.energy) as CSV rows."""
    from lanterna.fleet import energy

    r = energy.report(store, since, until, site=site)
    w = csv.DictWriter(out, ENERGY_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for j in r.rows(r.nodes):
        w.writerow(
            {
                **{k: j.get(k, "") for k in ENERGY_FIELDS},
                "node": j.get("name"),
                "groups": " ".join(j.get("groups") or []),
                "since": energy.iso(since),
                "until": energy.iso(until),
            }
        )
    return len(r.nodes)

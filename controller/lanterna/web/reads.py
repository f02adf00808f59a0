"""What the console shows, as JSON: each function takes the store and the request's
parameters and returns what the API answers (docs/web.md lists the routes). Nothing here
knows HTTP: bad parameters are lanterna.errors exceptions, which the app renders.

Times the console charts are node time (the telemetry's ``ts``): a district run at time
warp shows its own nights, not the controller's clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from lanterna.errors import malformed
from lanterna.fleet import energy
from lanterna.store import Store

STATES = ("on", "dimmed", "off", "fault", "offline", "unknown")
FIELDS = ("node", "lat", "lon", "state", "level", "site", "groups", "faults")
SPANS = {"24h": 86400.0, "30d": 30 * 86400.0}
POINTS = 480  # at most this many buckets in a chart's series

# Sensor fields as people read them: (name, divisor, unit shown). docs/protocol.md.
SENSOR_FIELDS = {
    "temp_x10": ("temperature", 10, "°C"),
    "rh_x10": ("humidity", 10, "%"),
    "pressure_x10": ("pressure", 10, "hPa"),
    "lux_x10": ("illuminance", 10, "lx"),
    "co2": ("CO2", 1, "ppm"),
    "pm1": ("PM1", 1, "µg/m³"),
    "pm2_5": ("PM2.5", 1, "µg/m³"),
    "pm10": ("PM10", 1, "µg/m³"),
    "pm2_5_x10": ("PM2.5", 10, "µg/m³"),
    "pm10_x10": ("PM10", 10, "µg/m³"),
}


def state_of(s: dict[str, Any]) -> str:
    """The one rule the map, the node page and the filters share (docs/web.md)."""
    if s["online"] is False:
        return "offline"
    if s["faults"]:
        return "fault"
    level = s["level"]
    if level is None:
        return "unknown"
    if level <= 0:
        return "off"
    return "on" if level >= 100 else "dimmed"


def config(store: Store, tiles: str | None) -> dict[str, Any]:
    return {
        "tiles": tiles,
        "sites": [
            {"name": s["name"], "lat": s["lat"], "lon": s["lon"], "tz": s["tz"]}
            for s in store.sites()
        ],
        "groups": [
            {"name": g["group"], "description": g["description"], "nodes": g["nodes"]}
            for g in store.groups()
        ],
        "states": list(STATES),
        "price_eur_kwh": energy.PRICE_PER_KWH,
        "co2_kg_kwh": energy.CO2_PER_KWH,
    }


class MapRows:
    """Nodes as the map's compact rows: sites and groups by index into two lists."""

    def __init__(self) -> None:
        self.sites: list[str] = []
        self.groups: list[str] = []
        self._site: dict[str, int] = {}
        self._group: dict[str, int] = {}

    def row(self, s: dict[str, Any], lat: float | None, lon: float | None) -> list[Any]:
        site = self._site.get(s["site"])
        if site is None:
            site = self._site[s["site"]] = len(self.sites)
            self.sites.append(s["site"])
        gs = []
        for g in s["groups"]:
            i = self._group.get(g)
            if i is None:
                i = self._group[g] = len(self.groups)
                self.groups.append(g)
            gs.append(i)
        return [s["node"], lat, lon, state_of(s), s["level"], site, gs, s["faults"]]


def map_nodes(
    store: Store,
    site: str | None = None,
    group: str | None = None,
    state: str | None = None,
    fault: str | None = None,
) -> dict[str, Any]:
    if state is not None and state not in STATES:
        raise malformed(f"state {state!r}: one of {', '.join(STATES)}")
    where = {n.id: (n.lat, n.lon) for n in store.nodes(site=site, group=group)}
    cursor = seen_max(store)
    rows = MapRows()
    out = []
    counts = dict.fromkeys(STATES, 0)
    for s in store.fleet_status(site, group):
        st = state_of(s)
        if (state is not None and st != state) or (fault is not None and fault not in s["faults"]):
            continue
        counts[st] += 1
        lat, lon = where.get(s["node"], (None, None))
        out.append(rows.row(s, lat, lon))
    return {
        "sites": rows.sites,
        "groups": rows.groups,
        "fields": list(FIELDS),
        "nodes": out,
        "counts": counts,
        "cursor": cursor,
    }


def seen_max(store: Store) -> float:
    r = store.tuples("SELECT MAX(last_seen) FROM node_status")[0]
    return float(r[0]) if r and r[0] is not None else 0.0


def changed(store: Store, since: float) -> tuple[list[dict[str, Any]], dict[str, tuple]]:
    """The status of nodes heard from at or after `since`, and their locations."""
    ids = [
        r[0] for r in store.tuples("SELECT node FROM node_status WHERE last_seen >= ?", (since,))
    ]
    if not ids:
        return [], {}
    nodes = store.nodes(ids=ids) if len(ids) <= 5000 else store.nodes()
    where = {n.id: (n.lat, n.lon) for n in nodes}
    wanted = set(ids)
    return [s for s in store.status(nodes) if s["node"] in wanted], where


def _tele(store: Store, node: str) -> dict[str, Any] | None:
    rows = store.telemetry_last(1, [node])
    if not rows:
        return None
    try:
        return json.loads(rows[0]["payload"])
    except (TypeError, ValueError):
        return None


def sensors(tele: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The last telemetry's sensor windows as readings: the window's mean, in its unit."""
    if not tele or not isinstance(tele.get("sensors"), dict):
        return []
    out = []
    for chip, fields in sorted(tele["sensors"].items()):
        if not isinstance(fields, dict):
            continue
        fault = fields.get("fault")
        for key, agg in sorted(fields.items()):
            if key == "fault" or not isinstance(agg, list) or len(agg) != 4:
                continue
            name, div, unit = SENSOR_FIELDS.get(key, (key, 1, tele.get("units", {}).get(key, "")))
            mean = agg[1]
            out.append(
                {
                    "sensor": chip,
                    "name": name,
                    "value": None if mean is None else round(mean / div, 2),
                    "min": None if agg[0] is None else round(agg[0] / div, 2),
                    "max": None if agg[2] is None else round(agg[2] / div, 2),
                    "unit": unit,
                    "at": tele.get("ts"),
                    "fault": fault,
                }
            )
        if fault and not any(r["sensor"] == chip for r in out):
            out.append({"sensor": chip, "name": "-", "value": None, "unit": "", "fault": fault})
    return out


def node_story(store: Store, node: str) -> dict[str, Any]:
    n = store.node(node)  # UnknownNode: the app answers 404
    s = store.status([n])[0]
    tele = _tele(store, node)
    boot = next((e for e in store.events(node, limit=500) if e["event"] == "boot"), None)
    slot = None
    if boot is not None:
        ota = json.loads(boot["payload"]).get("ota")
        slot = ota.get("slot") if isinstance(ota, dict) else None
    ev = tele.get("evse") if tele else None
    en: dict[str, Any] = {}
    if tele and isinstance(tele.get("energy"), dict):
        en = tele["energy"]
    return {
        **n.public(),
        "state": state_of(s),
        "online": s["online"],
        "level": s["level"],
        "mode": s["mode"],
        "firmware": s["firmware"],
        "slot": slot,
        "last_seen": s["last_seen"],
        "node_time": tele.get("ts") if tele else None,
        "faults": s["faults"],
        "sensors": sensors(tele),
        "evse": _evse(store, node, ev) if isinstance(ev, dict) else None,
        "energy": {
            "kwh": en.get("kwh"),
            "burn_h": en.get("burn_h"),
            "power_w": en.get("power_w"),
            "switch_on": en.get("switch_on"),
        },
        "source": tele.get("source") if tele else None,
    }


def _evse(store: Store, node: str, ev: dict[str, Any]) -> dict[str, Any]:
    sessions: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    for e in reversed(store.events(node, limit=500)):
        if e["event"] == "ev_session_start":
            start = {"start": json.loads(e["payload"]).get("ts"), "end": None, "kwh": None}
            sessions.append(start)
        elif e["event"] == "ev_session_stop":
            p = json.loads(e["payload"])
            if start is None:
                start = {"start": None}
                sessions.append(start)
            start.update(end=p.get("ts"), kwh=p.get("session_kwh", p.get("kwh")))
            start = None
    return {
        "status": ev.get("status"),
        "state": ev.get("state"),
        "error_code": ev.get("error_code"),
        "session_active": ev.get("session_active"),
        "session_kwh": ev.get("session_kwh"),
        "kwh": ev.get("total_kwh"),
        "power_w": ev.get("power_w"),
        "sessions": sessions[::-1][:20],
    }


def series(store: Store, node: str, span: str) -> dict[str, Any]:
    """Level (last of each bucket), power (mean) and the kWh counter (last) over the
    `span` before the node's newest telemetry, in at most POINTS buckets."""
    if span not in SPANS:
        raise malformed(f"span {span!r}: one of {', '.join(SPANS)}")
    store.node(node)
    r = store.tuples("SELECT MAX(ts) FROM telemetry WHERE node=?", (node,))[0]
    end = float(r[0]) if r and r[0] is not None else time.time()
    start = end - SPANS[span]
    width = SPANS[span] / POINTS
    t: list[float] = []
    level: list[int | None] = []
    power: list[float | None] = []
    kwh: list[float | None] = []
    acc: list[float] = []
    bucket = None
    q = "SELECT ts, level, power_w, kwh FROM telemetry WHERE node=? AND ts>=? ORDER BY ts"
    for ts, lv, pw, kw in store.tuples(q, (node, start)):
        b = int((ts - start) // width)
        if b != bucket:
            if bucket is not None:
                power[-1] = round(sum(acc) / len(acc), 2) if acc else None
            bucket, acc = b, []
            t.append(ts)
            level.append(lv)
            power.append(None)
            kwh.append(kw)
        else:
            t[-1], level[-1], kwh[-1] = ts, lv, kw if kw is not None else kwh[-1]
        if pw is not None:
            acc.append(pw)
    if bucket is not None:
        power[-1] = round(sum(acc) / len(acc), 2) if acc else None
    return {"span": span, "start": start, "end": end, "t": t, "level": level, "power_w": power,
            "kwh": kwh}  # fmt: skip


def events(store: Store, node: str, limit: int) -> list[dict[str, Any]]:
    store.node(node)
    out = []
    for e in store.events(node, limit=limit):
        p = json.loads(e["payload"])
        out.append(
            {
                "ts": e["ts"],
                "at": p.get("ts"),
                "event": e["event"],
                "active": p.get("active"),
                "detail": p.get("detail"),
                "payload": p,
            }
        )
    return out


def commands(store: Store, node: str, limit: int) -> list[dict[str, Any]]:
    store.node(node)
    out = []
    for c in store.commands(node, limit=limit):
        out.append(
            {
                "id": c["id"],
                "cmd": c["cmd"],
                "args": _summary_args(c["cmd"], json.loads(c["args"])),
                "via": c["via"],
                "sent": c["sent"],
                "status": c["status"],
                "result": json.loads(c["result"]) if c["result"] else None,
                "acked": c["acked"],
            }
        )
    return out


def _summary_args(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    """A schedule command's args are the whole schedule: shown by its id."""
    if cmd == "schedule" and isinstance(args.get("schedule"), dict):
        return {"schedule": args["schedule"].get("id")}
    return args


def schedules(store: Store) -> list[dict[str, Any]]:
    keys = ("id", "name", "version", "sha256", "created")
    q = "SELECT id, name, version, sha256, created FROM schedules ORDER BY name, version DESC"
    return [dict(zip(keys, r, strict=True)) for r in store.tuples(q)]


def schedule(store: Store, sid: int) -> dict[str, Any] | None:
    rows = store.tuples("SELECT id, name, version, body FROM schedules WHERE id=?", (sid,))
    if not rows:
        return None
    r = rows[0]
    return {"id": r[0], "name": r[1], "version": r[2], "body": json.loads(r[3])}


def energy_report(
    store: Store, site: str | None, group: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    try:
        t1 = energy.parse_when(until) if until else now_node(store)
        t0 = energy.parse_when(since) if since else t1 - 7 * 86400
    except ValueError as e:
        raise malformed(f"since/until: {e}") from None
    if t1 <= t0:
        raise malformed("until: must be after since")
    rep = energy.report(store, t0, t1, site=site, group=group)
    out = rep.as_json()
    out["days"] = _days(store, t0, t1, site, group, len(rep.nodes))
    return out


def now_node(store: Store) -> float:
    """Now, or the newest telemetry's node time when that is later (a district at time
    warp runs ahead of the controller's clock): where a period "until now" ends."""
    r = store.tuples("SELECT MAX(tele_at) FROM node_status")[0][0]
    return max(time.time(), float(r) if r is not None else 0.0)


MAX_DAY_QUERIES = 20_000  # nodes x days: beyond it the per-day bars are left out


def _days(
    store: Store, t0: float, t1: float, site: str | None, group: str | None, nodes: int
) -> list[dict[str, Any]] | None:
    days = int((t1 - t0 + 86399) // 86400)
    if days > 92 or nodes * days > MAX_DAY_QUERIES:
        return None
    out = []
    a = t0
    while a < t1:
        b = min(a + 86400, t1)
        tot = energy.report(store, a, b, site=site, group=group).total
        out.append(
            {
                "date": energy.iso(a)[:10],
                "kwh": round(tot.kwh, 4),
                "baseline_kwh": round(tot.baseline_kwh, 4),
            }  # fmt: skip
        )
        a = b
    return out


def faults(store: Store, site: str | None) -> list[dict[str, Any]]:
    selected = store.fleet_status(site, state="faulty")
    raises = store.fault_raises_many({s["node"]: s["faults"] for s in selected})
    acks = {
        (r[0], r[1]): (r[2], float(r[3]))
        for r in store.tuples("SELECT node, fault, by_whom, at FROM fault_acks")
    }
    now = time.time()
    out = []
    for s in selected:
        raised = raises.get(s["node"], {})
        for f in s["faults"]:
            e = raised.get(f)
            ack = acks.get((s["node"], f))
            # an acknowledgement holds for the raise it saw, not for a later one
            if ack is not None and e is not None and ack[1] < e["received"]:
                ack = None
            out.append(
                {
                    "node": s["node"],
                    "site": s["site"],
                    "fault": f,
                    "since": e["ts"] if e else None,
                    "age_s": max(0.0, now - e["received"]) if e else None,
                    "detail": e["payload"].get("detail") if e else None,
                    "acknowledged": {"by": ack[0], "at": ack[1]} if ack else None,
                }
            )
    return out


CSV_COLUMNS = ("node", "site", "fault", "since", "age_s", "detail", "acknowledged_by",
               "acknowledged_at")  # fmt: skip


def faults_csv(rows: Sequence[dict[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        a = r["acknowledged"] or {}
        w.writerow(
            [
                r["node"],
                r["site"],
                r["fault"],
                energy.iso(r["since"]) if r["since"] else "",
                "" if r["age_s"] is None else int(r["age_s"]),
                r["detail"] or "",
                a.get("by", ""),
                energy.iso(a["at"]) if a else "",
            ]
        )
    return buf.getvalue()


IN_FLIGHT = ("offered", "downloading", "installing", "trial")


def rollouts(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    out = []
    for r in store.tuples(
        "SELECT id, version, state, detail, created, updated, bundle_id FROM rollouts"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    ):
        waves: dict[int, dict[str, int]] = {}
        for w, st, n in store.tuples(
            "SELECT wave, state, COUNT(*) FROM rollout_nodes WHERE rollout=? GROUP BY wave, state",
            (r[0],),
        ):
            d = waves.setdefault(int(w), dict.fromkeys(("total", "done", "failed", "pending",
                                                         "in_flight"), 0))  # fmt: skip
            d["total"] += n
            key = "failed" if st in ("failed", "refused") else st if st in d else "in_flight"
            d[key] += n
        rows = [{"wave": w, **d} for w, d in sorted(waves.items())]
        totals = {k: sum(x[k] for x in rows) for k in ("total", "done", "failed", "pending",
                                                        "in_flight")}  # fmt: skip
        out.append(
            {
                "id": r[0],
                "version": r[1],
                "state": r[2],
                "detail": r[3],
                "created": r[4],
                "updated": r[5],
                "bundle_id": r[6],
                "waves": rows,
                "totals": totals,
            }  # fmt: skip
        )
    return out

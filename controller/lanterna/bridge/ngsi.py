"""The fleet as NGSI-LD entities in FIWARE Smart Data Models (ETSI GS CIM 009, normalized
form): one ``Streetlight`` per node, one ``StreetlightGroup`` per group, an
``AirQualityObserved`` per node with air sensors, an ``EVChargingStation`` per node with a
charge point. Pure functions of what the store holds (lanterna.bridge.source); the
bridge sends them, `lanterna export` writes them as GeoJSON. docs/platform.md has the
mapping table: every attribute, the field it comes from, its unit and its form.

Every attribute is a Property (``value``), a Relationship (``object``) or a GeoProperty (a
GeoJSON Point, [lon, lat]); every measured one carries ``observedAt``, the node's own
time of the message it came from, in UTC. Units are UN/CEFACT common codes
(``unitCode``). An attribute whose source is unknown is left out, never guessed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lanterna.bridge.source import GroupLatest, NodeLatest

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
# The Smart Data Models subjects' @contexts: Streetlighting (Streetlight, StreetlightGroup),
# Environment (AirQualityObserved), Transportation (EVChargingStation).
SDM_CONTEXTS = (
    "https://smart-data-models.github.io/dataModel.Streetlighting/context.jsonld",
    "https://smart-data-models.github.io/dataModel.Environment/context.jsonld",
    "https://smart-data-models.github.io/dataModel.Transportation/context.jsonld",
)
TYPES = ("Streetlight", "StreetlightGroup", "AirQualityObserved", "EVChargingStation")

# UN/CEFACT Recommendation 20 common codes
UNIT = {
    "W": "WTT",
    "kWh": "KWH",
    "h": "HUR",
    "ug/m3": "GQ",
    "ppm": "59",
    "degC": "CEL",
    "hPa": "A97",
    "1": "C62",  # a ratio (relative humidity 0-1)
}

# The node's TALQ lamp faults (docs/energy.md) -> Streetlight.status, worst first: the
# column's supply, then the lantern's gear (a relay that disobeys, a day burner), then
# the lamp itself.
_STATUS = (
    ("columnIssue", {"supplyLoss"}),
    ("brokenLantern", {"relayFailure", "lampUnexpectedOn"}),
    ("defectiveLamp", {"lampFailure", "cyclingFailure"}),
)

# OCPP 1.6 ChargePointStatus -> EVChargingStation.status (a one-connector station: the
# Smart Data Model's occupancy words, "full" when its one socket is taken)
_EV_STATUS = {
    "Available": "empty",
    "Preparing": "full",
    "Charging": "full",
    "SuspendedEV": "full",
    "SuspendedEVSE": "full",
    "Finishing": "full",
    "Reserved": "full",
    "Unavailable": "outOfService",
    "Faulted": "withIncidence",
}

# The air fields of the node's sensors (docs/protocol.md) -> AirQualityObserved: (sensor,
# field, attribute, scale, unit); the first sensor that has a value gives the attribute.
_AIR = (
    ("pms5003", "pm2_5", "pm25", 1, "ug/m3"),
    ("sds011", "pm2_5_x10", "pm25", 10, "ug/m3"),
    ("pms5003", "pm10", "pm10", 1, "ug/m3"),
    ("sds011", "pm10_x10", "pm10", 10, "ug/m3"),
    ("pms5003", "pm1", "pm1", 1, "ug/m3"),
    ("scd4x", "co2", "co2", 1, "ppm"),
    ("bme280", "temp_x10", "temperature", 10, "degC"),
    ("scd4x", "temp_x10", "temperature", 10, "degC"),
    ("bme280", "rh_x10", "relativeHumidity", 1000, "1"),  # tenths of % -> 0..1
    ("scd4x", "rh_x10", "relativeHumidity", 1000, "1"),
    ("bme280", "pressure_x10", "pressure", 10, "hPa"),
)
AIR_SENSORS = frozenset(s for s, *_ in _AIR)

_NAME = re.compile(r"^[A-Za-z0-9_.~-]+$")


@dataclass(frozen=True)
class Options:
    """What the store does not know about the city's charge points."""

    socket_type: str = "Type2"  # IEC 62196 Type 2: the Mode 3 socket of a European pole
    vehicle_types: tuple[str, ...] = ("car",)


def urn(etype: str, *parts: str) -> str:
    """``urn:ngsi-ld:<Type>:<site>:<node>``; names are the registry's (topic-safe), checked
    again here because an id is what a platform keys on."""
    for p in parts:
        if not _NAME.match(p):
            raise ValueError(f"{p!r} cannot be part of an NGSI-LD id")
    return ":".join(("urn:ngsi-ld", etype, *parts))


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def prop(value: Any, observed: float | None = None, unit: str | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"type": "Property", "value": value}
    if observed is not None:
        a["observedAt"] = iso(observed)
    if unit is not None:
        a["unitCode"] = UNIT[unit]
    return a


def rel(obj: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": obj}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def streetlight_id(n: NodeLatest) -> str:
    return urn("Streetlight", n.site, n.node)


def group_id(name: str) -> str:
    return urn("StreetlightGroup", name)


def lamp_status(faults: Iterable[str]) -> str:
    have = set(faults)
    for status, names in _STATUS:
        if have & names:
            return status
    return "ok"


def power_state(level: int | None) -> str | None:
    if level is None:
        return None
    return "off" if level <= 0 else "on" if level >= 100 else "low"


def streetlight(n: NodeLatest) -> dict[str, Any]:
    e: dict[str, Any] = {"id": streetlight_id(n), "type": "Streetlight"}
    e["name"] = prop(n.node)
    e["location"] = point(n.lon, n.lat)
    e["powerRating"] = prop(n.rated_w, unit="W")
    level, level_at = n.level()
    faults, faults_at = n.faults()
    e["status"] = prop(lamp_status(faults), faults_at)
    e["lampFaults"] = prop(sorted(f for f in faults if not f.startswith("sensor:")), faults_at)
    if level is not None:
        e["illuminanceLevel"] = prop(round(level / 100, 2), level_at)
        e["powerState"] = prop(power_state(level), level_at)
    if n.online is not None and n.status_at is not None:
        e["online"] = prop(n.online, n.status_at)
    t, at = n.tele, n.tele_at
    energy = t.get("energy") if t else None
    if isinstance(energy, dict) and at is not None:
        for src, attr, unit in (
            ("power_w", "powerConsumption", "W"),
            ("kwh", "lifetimePowerConsumption", "kWh"),
            ("burn_h", "burningHours", "h"),
        ):
            v = _number(energy.get(src))
            if v is not None:
                e[attr] = prop(v, at, unit)
    if n.groups:
        e["refStreetlightGroup"] = rel(group_id(n.groups[0]))
        e["controllingMethod"] = prop("group")
    else:
        e["controllingMethod"] = prop("individual")
    return e


def air_quality(n: NodeLatest) -> dict[str, Any] | None:
    """The node's air measurements (the mean of each field over the telemetry window);
    None when its telemetry has no air sensor."""
    t, at = n.tele, n.tele_at
    sensors = t.get("sensors") if t else None
    if not isinstance(sensors, dict) or at is None or not (AIR_SENSORS & set(sensors)):
        return None
    e: dict[str, Any] = {
        "id": urn("AirQualityObserved", n.site, n.node),
        "type": "AirQualityObserved",
    }
    e["dateObserved"] = prop(iso(at), at)
    e["location"] = point(n.lon, n.lat)
    e["typeofLocation"] = prop("outdoor")
    e["refStreetlight"] = rel(streetlight_id(n))
    for sensor, field, attr, scale, unit in _AIR:
        if attr in e:
            continue
        s = sensors.get(sensor)
        if not isinstance(s, dict) or s.get("fault"):
            continue
        mean = _mean(s.get(field))
        if mean is None:
            continue
        v = round(mean / scale, 3 if attr == "relativeHumidity" else 1)
        if attr != "temperature" and v < 0:
            continue  # a negative concentration or pressure is a sensor's fault, not air
        if attr == "relativeHumidity" and v > 1:
            continue
        e[attr] = prop(v, at, unit)
    return e


def ev_station(n: NodeLatest, o: Options) -> dict[str, Any] | None:
    """The charge point on the pole; None without one (no pilot input: ``evse`` null or
    not present)."""
    t, at = n.tele, n.tele_at
    ev = t.get("evse") if t else None
    if not isinstance(ev, dict) or not ev.get("present") or at is None:
        return None
    e: dict[str, Any] = {
        "id": urn("EVChargingStation", n.site, n.node),
        "type": "EVChargingStation",
    }
    e["name"] = prop(n.node)
    e["location"] = point(n.lon, n.lat)
    e["capacity"] = prop(1)
    e["socketNumber"] = prop(1)
    e["socketType"] = prop([o.socket_type])
    e["allowedVehicleType"] = prop(list(o.vehicle_types))
    e["refStreetlight"] = rel(streetlight_id(n))
    status = ev.get("status")
    if isinstance(status, str):
        e["ocppStatus"] = prop(status, at)
        e["status"] = prop(_EV_STATUS.get(status, "withIncidence"), at)
        e["availableCapacity"] = prop(1 if status == "Available" else 0, at)
    code = ev.get("error_code")
    if isinstance(code, str):
        e["ocppErrorCode"] = prop(code, at)
    power = _number(ev.get("power_w"))
    if power is not None:
        e["powerConsumption"] = prop(power, at, "W")
    for src, attr in (("total_kwh", "totalEnergyDelivered"), ("session_kwh", "sessionEnergy")):
        v = _number(ev.get(src))
        if v is not None:
            e[attr] = prop(v, at, "kWh")
    if ev.get("session_active") and isinstance(ev.get("session"), int):
        e["transactionId"] = prop(f"{n.node}-{ev['session']}", at)
    return e


def node_entities(n: NodeLatest, o: Options) -> list[dict[str, Any]]:
    out = [streetlight(n)]
    for e in (air_quality(n), ev_station(n, o)):
        if e is not None:
            out.append(e)
    return out


def streetlight_group(g: GroupLatest) -> dict[str, Any] | None:
    """A group of lamps: where its members are (their centroid), and what they agree on.
    None for a group without a located member (`location` is required)."""
    if not g.points:
        return None
    e: dict[str, Any] = {"id": group_id(g.name), "type": "StreetlightGroup"}
    e["name"] = prop(g.name)
    if g.description:
        e["description"] = prop(g.description)
    lon = sum(p[0] for p in g.points) / len(g.points)
    lat = sum(p[1] for p in g.points) / len(g.points)
    e["location"] = point(round(lon, 7), round(lat, 7))
    e["numberOfStreetlights"] = prop(g.members)
    if g.level is not None and g.level_at is not None:
        e["illuminanceLevel"] = prop(round(g.level / 100, 2), g.level_at)
        e["powerState"] = prop(power_state(g.level), g.level_at)
    if g.schedule is not None and g.schedule_at is not None:
        e["activeProgramId"] = prop(g.schedule, g.schedule_at)
    return e


def with_context(e: dict[str, Any], context: list[str]) -> dict[str, Any]:
    return {**e, "@context": context}


def keyvalues(e: dict[str, Any]) -> dict[str, Any]:
    """The simplified (key-values) form of a normalized entity, as the Smart Data Models'
    JSON Schemas describe it."""
    out: dict[str, Any] = {}
    for k, v in e.items():
        if k in ("id", "type"):
            out[k] = v
        elif k == "@context":
            continue
        elif v.get("type") == "Relationship":
            out[k] = v["object"]
        else:
            out[k] = v["value"]
    return out


def _number(v: Any) -> float | int | None:
    return v if type(v) in (int, float) and abs(v) < 1e15 else None


def _mean(v: Any) -> float | None:
    """A sensor field is [min, mean, max, count]; nulls when nothing was read."""
    if isinstance(v, list) and len(v) == 4 and v[3] and type(v[1]) in (int, float):
        return float(v[1])
    return None

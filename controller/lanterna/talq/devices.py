"""Each node as a TALQ Device, each board as a DeviceClass (docs/talq.md has the table).

A device's functions follow what its board has fitted (boards/*.json): every pole has a
BasicFunction, a LampActuatorFunction, a LampMonitorFunction, a LocationSensorFunction and
a CommunicationFunction; an S0 input adds an ElectricalMeterFunction; the sensors add
AtmosphericSensorFunction (bme280), GasSensorFunction (scd4x, CO2),
ParticulateMatterSensorFunction (pms5003, sds011), LightSensorFunction and
PhotocellFunction (bh1750); a control-pilot input adds the vendor function
``LanternaChargePointFunction`` (TALQ 2.7.1 has no charge point). Attribute values come
from the newest status, state and telemetry in the store (lanterna.bridge.source), each
with the node's time it was measured; what is unknown is left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanterna.bridge.source import NodeLatest
from lanterna.talq.model import (
    a_bool,
    a_float,
    a_int,
    a_str,
    attr,
    device_address,
    level_state,
)

# Function ids: one function of each kind per device
BASIC, ACTUATOR, MONITOR, METER, LOCATION, COMM = (
    "basic",
    "lampActuator",
    "lampMonitor",
    "meter",
    "location",
    "communication",
)
ATMOSPHERE, CO2, PM, LIGHT, PHOTOCELL, CHARGER = (
    "atmosphere",
    "co2",
    "pm",
    "light",
    "photocell",
    "chargePoint",
)
CHARGER_TYPE = "LanternaChargePointFunction"

# The node's lamp faults are TALQ LampMonitor events already (firmware lamp.faults)
LAMP_EVENTS = ("lampFailure", "relayFailure", "cyclingFailure", "supplyLoss", "lampUnexpectedOn")

# (function id, type, [(attribute, unit, readOnly)], events) of every function there can be
_DESC: dict[str, tuple[str, list[tuple[str, str, bool]], tuple[str, ...]]] = {
    BASIC: (
        "BasicFunction",
        [
            ("displayName", "None", True),
            ("assetId", "None", True),
            ("hwType", "None", True),
            ("swType", "None", True),
            ("swVersion", "None", True),
        ],
        (),
    ),
    ACTUATOR: (
        "LampActuatorFunction",
        [
            ("defaultLightState", "Percent", True),
            ("targetLightCommand", "None", False),
            ("feedbackLightCommand", "None", True),
            ("actualLightState", "Percent", True),
            ("calendarID", "None", False),
        ],
        (),
    ),
    MONITOR: (
        "LampMonitorFunction",
        [
            ("actuatorReference", "None", True),
            ("numberOfLamps", "None", True),
            ("switchOnCounter", "None", True),
            ("operatingHours", "Hours", True),
            ("activePower", "Watts", True),
            ("activeEnergy", "KiloWattHours", True),
        ]
        + [(e, "None", True) for e in LAMP_EVENTS],
        LAMP_EVENTS,
    ),
    METER: (
        "ElectricalMeterFunction",
        [("totalPower", "KiloWatt", True), ("totalActiveEnergy", "KiloWattHours", True)],
        (),
    ),
    LOCATION: ("LocationSensorFunction", [("location", "None", True)], ()),
    COMM: (
        "CommunicationFunction",
        [
            ("communicationType", "None", True),
            ("logicalAddress", "None", True),
            ("communicationFailure", "None", True),
        ],
        ("communicationFailure",),
    ),
    ATMOSPHERE: (
        "AtmosphericSensorFunction",
        [
            ("airTemperature", "DegreesCelcius", True),
            ("relativeHumidity", "Percent", True),
            ("atmosphericPressure", "Hectopascal", True),
        ],
        (),
    ),
    CO2: (
        "GasSensorFunction",
        [("gasName", "None", True), ("gasConcentration", "PartsPerMillion", True)],
        (),
    ),
    PM: (
        "ParticulateMatterSensorFunction",
        [
            ("pm1", "MicrogramsPerCubicMeter", True),
            ("pm2-5", "MicrogramsPerCubicMeter", True),
            ("pm10", "MicrogramsPerCubicMeter", True),
        ],
        (),
    ),
    LIGHT: ("LightSensorFunction", [("lightLevel", "Illuminance", True)], ()),
    PHOTOCELL: (
        "PhotocellFunction",
        [("onLevel", "Illuminance", True), ("offLevel", "Illuminance", True)],
        (),
    ),
}
# the charge point's vendor attributes: (name, attribute type, unit, scope)
CHARGER_ATTRS = (
    ("ocppStatus", "AttributeString", "None", "measurement"),
    ("ocppErrorCode", "AttributeString", "None", "measurement"),
    ("sessionActive", "AttributeBoolean", "None", "measurement"),
    ("activePower", "AttributeFloat", "Watts", "measurement"),
    ("sessionEnergy", "AttributeFloat", "KiloWattHours", "measurement"),
    ("totalEnergy", "AttributeFloat", "KiloWattHours", "measurement"),
)
WRITABLE = {(ACTUATOR, "calendarID"), (ACTUATOR, "targetLightCommand")}

# sensor chip -> (function, [(telemetry field, scale, attribute)])
_SENSORS = {
    "bme280": (
        ATMOSPHERE,
        [
            ("temp_x10", 10, "airTemperature"),
            ("rh_x10", 10, "relativeHumidity"),
            ("pressure_x10", 10, "atmosphericPressure"),
        ],
    ),
    "scd4x": (CO2, [("co2", 1, "gasConcentration")]),
    "pms5003": (PM, [("pm1", 1, "pm1"), ("pm2_5", 1, "pm2-5"), ("pm10", 1, "pm10")]),
    "sds011": (PM, [("pm2_5_x10", 10, "pm2-5"), ("pm10_x10", 10, "pm10")]),
    "bh1750": (LIGHT, [("lux_x10", 10, "lightLevel")]),
}


def functions_of(board: dict[str, Any] | None) -> list[str]:
    """The function ids a board's poles have, in a fixed order."""
    out = [BASIC, ACTUATOR, MONITOR]
    b = board or {}
    if b.get("s0"):
        out.append(METER)
    out += [LOCATION, COMM]
    chips = set(b.get("sensors") or ())
    for chip, (fid, _) in _SENSORS.items():
        if chip in chips and fid not in out:
            out.append(fid)
    if "bh1750" in chips:
        out.append(PHOTOCELL)
    if b.get("cp_adc"):
        out.append(CHARGER)
    return out


def class_name(board: str) -> str:
    return "lanterna-" + board


def device_class(board: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": class_name(board), "functions": [_function_desc(f) for f in functions_of(spec)]}


def _function_desc(fid: str) -> dict[str, Any]:
    if fid == CHARGER:
        return {
            "functionId": fid,
            "type": CHARGER_TYPE,
            "vendorAttributes": [
                {
                    "name": n,
                    "type": t,
                    "unit": u,
                    "scope": s,
                    "readOnly": True,
                    "description": f"the pole's charge point (OCPP 1.6): {n}",
                }
                for n, t, u, s in CHARGER_ATTRS
            ],
        }
    ftype, attrs, events = _DESC[fid]
    d: dict[str, Any] = {"functionId": fid, "type": ftype, "attributes": []}
    for name, unit, ro in attrs:
        a: dict[str, Any] = {"name": name, "unit": unit, "readOnly": ro}
        if name in ("defaultLightState", "actualLightState"):
            a.update(minValue=0, maxValue=100)
        if name == "targetLightCommand":
            a["commands"] = {
                "scope": "override",
                "states": [{"name": "LevelState"}],
                "levels": [{"start": 0, "end": 100}],
                "attributes": ["reason", "cmsRefId", "expiration", "rampToLevelTime"],
            }
        d["attributes"].append(a)
    if events:
        d["events"] = [{"type": e} for e in events]
    return d


@dataclass
class Extra:
    """What the gateway itself holds about a node (lanterna.talq.state)."""

    calendar: str | None = None
    target: dict[str, Any] | None = None  # the TALQ Command last sent (targetLightCommand)
    target_at: float | None = None
    feedback: dict[str, Any] | None = None  # the Command in effect as the node acked it
    feedback_at: float | None = None
    photocell: tuple[float, float] | None = None  # (on, off) lux of its schedule
    board: str = "sim"
    firmware: str | None = None
    network: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def device(n: NodeLatest, spec: dict[str, Any] | None, x: Extra) -> dict[str, Any]:
    fids = functions_of(spec)
    fs = [_function(fid, n, x) for fid in fids]
    return {
        "address": device_address(n.node),
        "name": n.node,
        "class": class_name(x.board),
        "functions": fs,
    }


def _function(fid: str, n: NodeLatest, x: Extra) -> dict[str, Any]:
    f: dict[str, Any] = {
        "id": fid,
        "type": CHARGER_TYPE if fid == CHARGER else _DESC[fid][0],
    }
    f.update(_attributes(fid, n, x))
    return f


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _num(v: Any) -> float | None:
    return float(v) if type(v) in (int, float) and abs(v) < 1e15 else None


def _mean(v: Any) -> float | None:
    if isinstance(v, list) and len(v) == 4 and v[3] and type(v[1]) in (int, float):
        return float(v[1])
    return None


def _attributes(fid: str, n: NodeLatest, x: Extra) -> dict[str, Any]:
    t: dict[str, Any] = n.tele or {}
    at = n.tele_at
    out: dict[str, Any] = {}
    if fid == BASIC:
        out["displayName"] = a_str(n.node)
        out["assetId"] = a_str(n.node)
        out["hwType"] = a_str(x.board)
        out["swType"] = a_str("lanterna")
        if x.firmware:
            out["swVersion"] = a_str(x.firmware)
    elif fid == ACTUATOR:
        out["defaultLightState"] = attr("LevelState", level_state(100))
        level, level_at = n.level()
        if level is not None:
            out["actualLightState"] = attr("LevelState", level_state(level), level_at)
        if x.target is not None:
            out["targetLightCommand"] = attr("Command", x.target, x.target_at)
        if x.feedback is not None:
            out["feedbackLightCommand"] = attr("Command", x.feedback, x.feedback_at)
        if x.calendar is not None:
            out["calendarID"] = a_str(x.calendar)
    elif fid == MONITOR:
        out["actuatorReference"] = a_str(ACTUATOR)
        out["numberOfLamps"] = a_int(1)
        energy: dict[str, Any] = _obj(t.get("energy"))
        for src, name, conv in (
            ("switch_on", "switchOnCounter", "int"),
            ("burn_h", "operatingHours", "float"),
            ("power_w", "activePower", "float"),
            ("kwh", "activeEnergy", "float"),
        ):
            v = _num(energy.get(src))
            if v is not None:
                out[name] = a_int(int(v), at) if conv == "int" else a_float(v, at)
        faults, faults_at = n.faults()
        if faults_at is not None:
            for e in LAMP_EVENTS:
                out[e] = a_bool(e in faults, faults_at)
    elif fid == METER:
        energy = _obj(t.get("energy"))
        p, k = _num(energy.get("power_w")), _num(energy.get("kwh"))
        if p is not None:
            out["totalPower"] = a_float(round(p / 1000, 6), at)
        if k is not None:
            out["totalActiveEnergy"] = a_float(k, at)
    elif fid == LOCATION:
        out["location"] = attr("Location", {"latitude": n.lat, "longitude": n.lon})
    elif fid == COMM:
        if x.network:
            out["communicationType"] = a_str(x.network)
        out["logicalAddress"] = a_str(n.node)
        if n.online is not None:
            out["communicationFailure"] = a_bool(not n.online, n.status_at)
    elif fid == PHOTOCELL:
        if x.photocell is not None:
            out["onLevel"] = a_float(x.photocell[0])
            out["offLevel"] = a_float(x.photocell[1])
    elif fid == CHARGER:
        ev = t.get("evse")
        if isinstance(ev, dict) and ev.get("present"):
            if isinstance(ev.get("status"), str):
                out["ocppStatus"] = a_str(ev["status"], at)
            if isinstance(ev.get("error_code"), str):
                out["ocppErrorCode"] = a_str(ev["error_code"], at)
            if isinstance(ev.get("session_active"), bool):
                out["sessionActive"] = a_bool(ev["session_active"], at)
            for src, name in (
                ("power_w", "activePower"),
                ("session_kwh", "sessionEnergy"),
                ("total_kwh", "totalEnergy"),
            ):
                v = _num(ev.get(src))
                if v is not None:
                    out[name] = a_float(v, at)
    else:
        if fid == CO2:
            out["gasName"] = attr("GasName", "CO2")
        sensors = _obj(t.get("sensors"))
        for chip, (owner, fields) in _SENSORS.items():
            s = sensors.get(chip)
            if owner != fid or not isinstance(s, dict) or s.get("fault"):
                continue
            for key, scale, name in fields:
                m = _mean(s.get(key))
                if m is not None and name not in out:
                    out[name] = a_float(round(m / scale, 2), at)
    return out


def event_function(event: str) -> str:
    """The function an event of the node comes from."""
    if event in LAMP_EVENTS:
        return MONITOR
    if event == "communicationFailure":
        return COMM
    return BASIC


def classes(boards: Iterable[tuple[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    return [device_class(b, spec) for b, spec in sorted(boards, key=lambda p: p[0])]


def attribute_names(fid: str) -> Sequence[str]:
    if fid == CHARGER:
        return [n for n, *_ in CHARGER_ATTRS]
    return [a for a, _, _ in _DESC[fid][1]]


def function_type(fid: str) -> str:
    return CHARGER_TYPE if fid == CHARGER else _DESC[fid][0]

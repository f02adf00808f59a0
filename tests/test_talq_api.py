"""The TALQ gateway's Gateway API against the TALQ 2.7.1 OpenAPI file: a real `lanterna
talq-gateway` (uvicorn, mutual TLS on loopback) over a real store and mosquitto.

schemathesis generates requests from the Gateway OpenAPI for every operation the
gateway implements, and checks every answer against it (status, content type, headers,
body schema, never a 5xx); the answers of the real fleet's devices are also checked
against the data model's own function and attribute schemas (tests/talqcms.py's
validator: the discriminated types, which the API file leaves open). Then behaviour:
TLS without a client certificate or with a foreign one is refused, TALQ's headers and
parameters, errors that say what and where, calendars refused with what the node format
cannot say, groups, loggers and reports. Calendars and overrides reaching real nodes are
tests/test_talq_district.py's.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import requests
from specs import TALQ
from talqgw import Talq, start_gateway
from talqpki import make_pki

from lanterna.broker.mosquitto import Mosquitto
from lanterna.store import Store
from lanterna.talq.model import device_address

pytestmark = pytest.mark.skipif(
    TALQ is None, reason="the TALQ OpenAPI files (shared/specs/talq) are not here"
)

KEY = bytes(range(32))
T0 = 1796200000.0  # node time of the stored telemetry
NODES = ["gw-001", "gw-002", "gw-003", "gw-004"]
CMS = str(uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"))


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _tele(level: int, kwh: float) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "ts": iso(T0),
            "level": level,
            "source": "schedule",
            "energy": {"kwh": kwh, "power_w": 31.5, "switch_on": 2, "burn_h": 3.25, "source": "s0"},
            "faults": [],
            "sensors": {
                "bme280": {
                    "fault": None,
                    "temp_x10": [80, 85, 90, 6],
                    "rh_x10": [700, 712, 720, 6],
                    "pressure_x10": [10100, 10132, 10150, 6],
                },
                "bh1750": {"fault": None, "lux_x10": [10, 22, 30, 6]},
                "scd4x": {"fault": None, "co2": [410, 420, 430, 6]},
                "pms5003": {
                    "fault": None,
                    "pm1": [2, 3, 4, 6],
                    "pm2_5": [5, 6, 7, 6],
                    "pm10": [8, 9, 10, 6],
                },
            },
            "units": {"temp_x10": "degC"},
            "evse": {
                "present": True,
                "state": "C",
                "status": "Charging",
                "error_code": "NoError",
                "session": 3,
                "session_active": True,
                "session_kwh": 4.5,
                "total_kwh": 120.25,
                "power_w": 7200,
            },
            "heap_free": 41234,
        }
    ).encode()


def _state(level: int, faults: list[str]) -> bytes:
    return json.dumps(
        {"v": 1, "ts": iso(T0), "level": level, "mode": "schedule", "fw": "1.2.0", "faults": faults}
    ).encode()


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pki = make_pki(tmp / "pki")
        self.gw_cert = self.pki.issue(
            "gateway", server_hosts=("127.0.0.1", "localhost"), client=True
        )
        self.cms_cert = self.pki.issue("cms", client=True)
        self.db = tmp / "home" / "lanterna.db"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("talq")
    e = Env(tmp)
    broker = Mosquitto(tmp / "broker")
    broker.start()
    (tmp / "home").mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "LANTERNA_HOME": str(tmp / "home"),
        "LANTERNA_BROKER": broker.url,
        "LANTERNA_BROKER_PASSWORD": broker.users["controller"],
    }
    with Store(e.db) as s:
        s.put_site("gw", 51.48, 0.0, "Europe/London")
        for i, node in enumerate(NODES):
            s.put_node(node, "gw", "sim", KEY, lat=51.48 + i * 1e-3, lon=0.01)
            now = time.time()
            faults = ["lampFailure"] if node == "gw-004" else []
            s.ingest(
                [
                    (node, "status", b"online", now),
                    (node, "state", _state(60, faults), now),
                    (node, "tele", _tele(60, 1.5 + i), now),
                ]
            )
        s.put_group("high-street", "")
        s.group_add("high-street", ["gw-001", "gw-002"])
    g = start_gateway(env, e.gw_cert, e.pki.ca, e.pki.ca, "--cms-address", CMS)
    try:
        yield e, g, Talq(g.url, e.pki.ca, e.cms_cert, CMS)
    finally:
        g.stop()
        broker.stop()


# -- the OpenAPI file ---------------------------------------------------------------------

# Every operation the gateway implements (docs/talq.md): path, method
IMPLEMENTED = [
    ("/devices", "GET"),
    ("/devices", "PATCH"),
    ("/devices", "POST"),
    ("/devices", "PUT"),
    ("/devices/count", "GET"),
    ("/devices/{deviceAddress}", "GET"),
    ("/devices/{deviceAddress}", "PATCH"),
    ("/devices/{deviceAddress}", "DELETE"),
    ("/devices/{deviceAddress}/{functionId}", "GET"),
    ("/devices/{deviceAddress}/{functionId}", "PATCH"),
    ("/devices/{deviceAddress}/{functionId}/{attributeName}", "GET"),
    ("/devices/{deviceAddress}/{functionId}/{attributeName}", "PATCH"),
    ("/device-classes", "GET"),
    ("/device-classes/count", "GET"),
    ("/device-classes/{className}", "GET"),
    ("/groups", "GET"),
    ("/groups", "POST"),
    ("/groups", "PUT"),
    ("/groups/count", "GET"),
    ("/groups/{groupAddress}", "GET"),
    ("/groups/{groupAddress}", "PUT"),
    ("/groups/{groupAddress}", "DELETE"),
    ("/groups/{groupAddress}/members", "PUT"),
    ("/groups/{groupAddress}/members/count", "GET"),
    ("/groups/{groupAddress}/members/{memberResource}/{memberAddress}", "DELETE"),
    ("/calendars", "GET"),
    ("/calendars", "POST"),
    ("/calendars", "PUT"),
    ("/calendars/count", "GET"),
    ("/calendars/{calendarAddress}", "GET"),
    ("/calendars/{calendarAddress}", "PUT"),
    ("/calendars/{calendarAddress}", "DELETE"),
    ("/control-programs", "GET"),
    ("/control-programs", "POST"),
    ("/control-programs", "PUT"),
    ("/control-programs/count", "GET"),
    ("/control-programs/{controlProgramAddress}", "GET"),
    ("/control-programs/{controlProgramAddress}", "PUT"),
    ("/control-programs/{controlProgramAddress}", "DELETE"),
    ("/assign-commands", "GET"),
    ("/assign-commands", "POST"),
    ("/override-commands", "POST"),
    ("/logger-configs", "POST"),
    ("/logger-configs/{loggerAddress}", "GET"),
    ("/logger-configs/{loggerAddress}", "PUT"),
    ("/logger-configs/{loggerAddress}", "DELETE"),
    ("/log-reports/count", "GET"),
    ("/log-reports/{loggerAddress}", "GET"),
    ("/services", "GET"),
    ("/services/{serviceName}", "GET"),
    ("/data-packages", "GET"),
    ("/data-packages", "PUT"),
]
EXAMPLES = 12  # generated requests per operation


@pytest.fixture(scope="module")
def openapi():
    schemathesis = pytest.importorskip("schemathesis")
    return schemathesis.openapi.from_path(str(TALQ / "talq-api-gateway-2-7-1-online.json"))


def _checks():
    from schemathesis.checks import CHECKS

    names = (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
    return [CHECKS.get_one(n) for n in names]


def _tls(e: Env) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    s.verify = str(e.pki.ca)
    s.cert = (str(e.cms_cert[0]), str(e.cms_cert[1]))
    return s


def _call(case, e: Env, url: str, session: requests.Session):
    """The request over mutual TLS (schemathesis passes these to requests)."""
    return case.call(
        base_url=url,
        session=session,
        timeout=30,
        verify=str(e.pki.ca),
        cert=(str(e.cms_cert[0]), str(e.cms_cert[1])),
    )


def _fix(case, real: dict[str, str] | None = None) -> None:
    """A CMS's own parameters on a generated request: its address, TALQ's version (the
    rest, body and path parameters included, is as schemathesis generated it)."""
    case.query = dict(case.query or {})
    case.query["clientAddress"] = CMS
    if "talqRequestId" in case.query:
        case.query["talqRequestId"] = str(uuid.uuid4())
    case.headers = dict(case.headers or {})
    case.headers["talq-api-version"] = "2.7.1"
    if real:
        case.path_parameters = {**(case.path_parameters or {}), **real}


@pytest.mark.parametrize("path,method", IMPLEMENTED, ids=[f"{m} {p}" for p, m in IMPLEMENTED])
def test_every_answer_conforms_to_the_gateway_openapi(gateway, openapi, path, method):
    from hypothesis import HealthCheck, given, settings

    e, g, _ = gateway
    op = openapi[path][method]
    session = _tls(e)
    checks = _checks()
    seen: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def run(case):
        _fix(case)
        r = _call(case, e, g.url, session)
        seen.append(r.status_code)
        case.validate_response(r, checks=checks)

    run()
    assert seen, f"{method} {path}: no request was made"


REAL = {
    "deviceAddress": device_address("gw-001"),
    "functionId": "lampActuator",
    "attributeName": "actualLightState",
    "className": "lanterna-sim",
    "groupAddress": "high-street",
    "serviceName": "ControlService",
}


@pytest.mark.parametrize(
    "path",
    [
        "/devices",
        "/devices/count",
        "/devices/{deviceAddress}",
        "/devices/{deviceAddress}/{functionId}",
        "/devices/{deviceAddress}/{functionId}/{attributeName}",
        "/device-classes",
        "/device-classes/{className}",
        "/groups",
        "/groups/{groupAddress}",
        "/groups/{groupAddress}/members/count",
        "/services",
        "/services/{serviceName}",
        "/calendars",
        "/control-programs",
        "/assign-commands",
        "/log-reports/count",
        "/data-packages",
    ],
)
def test_the_real_fleet_answers_conform_and_are_found(gateway, openapi, path):
    """The same checks on requests for what exists (generated addresses are 404s)."""
    e, g, _ = gateway
    op = openapi[path]["GET"]
    params = {k: v for k, v in REAL.items() if "{" + k + "}" in path}
    case = op.Case(
        path_parameters=params or None,
        query={"clientAddress": CMS},
        headers={"talq-api-version": "2.7.1"},
    )
    r = _call(case, e, g.url, _tls(e))
    assert r.status_code == 200, r.text[:500]
    case.validate_response(r, checks=_checks())


# -- the devices ------------------------------------------------------------------------


def test_a_device_has_the_functions_its_board_fits_with_talq_names_and_units(gateway):
    e, g, t = gateway
    d = t.ok("GET", f"/devices/{device_address('gw-001')}")
    assert d["name"] == "gw-001" and d["class"] == "lanterna-sim"
    fs = {f["id"]: f for f in d["functions"]}
    types = {f["type"] for f in d["functions"]}
    assert {
        "BasicFunction",
        "LampActuatorFunction",
        "LampMonitorFunction",
        "ElectricalMeterFunction",
        "LocationSensorFunction",
        "AtmosphericSensorFunction",
        "GasSensorFunction",
        "ParticulateMatterSensorFunction",
        "LightSensorFunction",
        "PhotocellFunction",
        "LanternaChargePointFunction",
    } <= types
    assert fs["lampActuator"]["actualLightState"] == {
        "type": "AttributeLevelState",
        "value": {"name": "LevelState", "value": 60},
        "timestamp": iso(T0),
    }
    mon = fs["lampMonitor"]
    assert mon["activePower"]["value"] == 31.5 and mon["activeEnergy"]["value"] == 1.5
    assert mon["operatingHours"]["value"] == 3.25 and mon["switchOnCounter"]["value"] == 2
    assert mon["lampFailure"]["value"] is False
    assert fs["meter"]["totalPower"]["value"] == pytest.approx(0.0315)
    assert fs["atmosphere"]["airTemperature"]["value"] == 8.5
    assert fs["atmosphere"]["atmosphericPressure"]["value"] == 1013.2
    assert fs["co2"]["gasConcentration"]["value"] == 420.0
    assert fs["co2"]["gasName"]["value"] == "CO2"
    assert fs["pm"]["pm2-5"]["value"] == 6.0
    assert fs["light"]["lightLevel"]["value"] == 2.2
    assert fs["location"]["location"]["value"] == {"latitude": 51.48, "longitude": 0.01}
    assert fs["chargePoint"]["ocppStatus"]["value"] == "Charging"
    assert fs["chargePoint"]["activePower"]["value"] == 7200
    bad = t.ok("GET", f"/devices/{device_address('gw-004')}")
    assert {f["id"]: f for f in bad["functions"]}["lampMonitor"]["lampFailure"]["value"] is True


def test_the_device_class_announces_every_attribute_a_device_shows(gateway):
    e, g, t = gateway
    cls = t.ok("GET", "/device-classes/lanterna-sim")
    desc = {f["functionId"]: f for f in cls["functions"]}
    for d in t.ok("GET", "/devices"):
        for f in d["functions"]:
            fd = desc[f["id"]]
            assert fd["type"] == f["type"]
            names = {a["name"] for a in fd.get("attributes", []) + fd.get("vendorAttributes", [])}
            assert set(f) - {"id", "type"} <= names, (f["id"], set(f) - names)


def test_pagination_gives_the_fleet_in_pages_with_its_counts(gateway):
    e, g, t = gateway
    r = t.get("/devices", query={"offset": "1", "limit": "2"})
    assert r.status_code == 200
    assert [d["name"] for d in r.json()] == ["gw-002", "gw-003"]
    assert r.headers["pagination-totalCount"] == "4" and r.headers["pagination-count"] == "2"
    assert t.ok("GET", "/devices/count") == 4
    assert t.ok("GET", "/devices/count", query={"deviceClasses": "lanterna-other"}) == 0


# -- authentication and TALQ's parameters -----------------------------------------------


def test_no_client_certificate_or_a_foreign_one_never_gets_an_answer(gateway, tmp_path):
    e, g, _ = gateway
    # (TLS 1.3: the server checks the client's certificate after the handshake and
    # closes the connection, which the client sees as a reset or as a TLS alert)
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        Talq(g.url, e.pki.ca, None, CMS).get("/devices")
    other = make_pki(tmp_path / "other")
    foreign = other.issue("intruder", client=True)
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        Talq(g.url, e.pki.ca, foreign, CMS).get("/devices")
    # the guard: the same call with the CMS's certificate is answered
    assert Talq(g.url, e.pki.ca, e.cms_cert, CMS).get("/devices").status_code == 200


@pytest.mark.parametrize(
    "query,headers,key",
    [
        ({"clientAddress": None}, {}, "parameterMissing"),
        ({"clientAddress": "not-a-uuid"}, {}, "parameterValueNotValid"),
        ({"clientAddress": str(uuid.uuid4())}, {}, "parameterValueNotValid"),
        ({}, {"talq-api-version": "1.0.0"}, "headerValueNotValid"),
    ],
)
def test_a_request_without_talqs_parameters_is_refused_with_its_key(gateway, query, headers, key):
    e, g, t = gateway
    r = t.call("GET", "/devices", query=query, headers=headers)
    assert r.status_code == 400 and r.json()[0]["key"] == key, r.text


def test_a_request_without_the_version_header_is_refused(gateway):
    e, g, t = gateway
    r = t.s.get(g.url + "/devices", params={"clientAddress": CMS}, timeout=30)
    assert r.status_code == 400 and r.json()[0]["key"] == "headerMissing"


def test_a_write_without_a_request_id_is_refused_and_changes_nothing(gateway):
    e, g, t = gateway
    grp = [{"address": "no-id", "ownerCMS": CMS, "members": []}]
    r = t.call("POST", "/groups", grp, write=False)
    assert r.status_code == 400 and r.json()[0]["key"] == "parameterMissing"
    assert t.get("/groups/no-id").status_code == 404


def test_unknown_resources_answer_a_talq_error(gateway):
    e, g, t = gateway
    r = t.get("/lamp-types")
    assert r.status_code == 404 and r.json()[0]["key"] == "resourceNotFound"
    r = t.get(f"/devices/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()[0]["key"] == "resourceNotFound"


def test_malformed_bodies_say_what_and_where_and_change_nothing(gateway):
    e, g, t = gateway
    r = t.s.post(
        g.url + "/groups",
        data=b"{not json",
        params={"clientAddress": CMS, "talqRequestId": str(uuid.uuid4())},
        headers={"talq-api-version": "2.7.1", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "not JSON" in r.json()[0]["description"]
    r = t.call("POST", "/groups", [{"address": "x", "ownerCMS": CMS}])
    assert r.status_code == 400 and "[0].members: missing" in r.json()[0]["description"]
    r = t.call(
        "POST",
        "/override-commands",
        {
            "addresses": [{"resource": "devices", "address": device_address("gw-001")}],
            "targetCommand": {"state": {"name": "LevelState", "value": 140}},
        },
    )
    assert r.status_code == 422 and r.json()[0]["key"] == "overrideCommandNotValid"
    assert "targetCommand.state.value 140" in r.json()[0]["description"]
    with Store(e.db) as s:
        assert s.commands(node="gw-001") == []


# -- groups -------------------------------------------------------------------------------


def test_a_group_written_by_the_cms_is_a_lanterna_group(gateway):
    e, g, t = gateway
    members = [{"resource": "devices", "address": device_address(n)} for n in ("gw-003", "gw-004")]
    out = t.ok(
        "POST",
        "/groups",
        [{"address": "riverside", "ownerCMS": CMS, "members": members}],
        want=(201,),
    )
    assert out[0]["address"] == "riverside"
    with Store(e.db) as s:
        assert [n.id for n in s.nodes(group="riverside")] == ["gw-003", "gw-004"]
    assert (
        t.call(
            "POST", "/groups", [{"address": "riverside", "ownerCMS": CMS, "members": []}]
        ).status_code
        == 409
    )
    assert t.ok("GET", "/groups/riverside/members/count") == 2
    t.ok("DELETE", f"/groups/riverside/members/devices/{device_address('gw-004')}")
    with Store(e.db) as s:
        assert [n.id for n in s.nodes(group="riverside")] == ["gw-003"]
    r = t.call("PUT", "/groups/riverside/members", [{"resource": "groups", "address": "x"}])
    assert r.status_code == 422 and "group inside a group" in r.json()[0]["description"]
    t.ok("DELETE", "/groups/riverside")
    assert t.get("/groups/riverside").status_code == 404


# -- calendars ----------------------------------------------------------------------------


def _program(pid: str, **extra) -> dict:
    return {
        "type": "ControlProgramOne",
        "id": pid,
        "ownerCMS": CMS,
        "activePeriods": [],
        "fixedTimeControls": [
            {"startTime": "23:00:00", "command": {"state": {"name": "LevelState", "value": 50}}}
        ],
        "astroClockTimeControls": [
            {
                "offset": -30,
                "solarEventType": "sunset",
                "operation": "Set",
                "command": {"state": {"name": "LevelState", "value": 100}},
            },
            {
                "offset": 0,
                "solarEventType": "sunrise",
                "operation": "Set",
                "command": {"state": {"name": "LevelState", "value": 0}},
            },
        ],
        **extra,
    }


def test_a_program_the_node_cannot_follow_is_refused_with_what_and_nothing_is_stored(gateway):
    e, g, t = gateway
    p = _program("max-op")
    p["astroClockTimeControls"][0]["operation"] = "Max"
    r = t.call("POST", "/control-programs", [p])
    assert r.status_code == 422, r.text
    assert "operation" in r.json()[0]["description"]
    assert t.get("/control-programs/max-op").status_code == 404
    cal = {
        "id": "nth-monday",
        "ownerCMS": CMS,
        "defaultProgram": "p-ok",
        "rules": [
            {
                "program": "p-ok",
                "condition": {"type": "ccDay", "days": [{"start": 1}], "occurrences": ["1"]},
            }
        ],
    }
    t.ok("POST", "/control-programs", [_program("p-ok")], want=(201,))
    t.ok("POST", "/calendars", [cal], want=(201,))
    r = t.call(
        "POST",
        "/assign-commands",
        {
            "addresses": [{"resource": "groups", "address": "high-street"}],
            "entity": {"resource": "calendars", "address": "nth-monday"},
        },
    )
    assert r.status_code == 422 and "occurrences" in r.json()[0]["description"], r.text
    with Store(e.db) as s:
        assert s.commands(node="gw-001") == []


def test_a_program_in_use_cannot_be_deleted(gateway):
    e, g, t = gateway
    t.ok("POST", "/control-programs", [_program("in-use")], want=(201,))
    t.ok(
        "POST",
        "/calendars",
        [{"id": "uses-it", "ownerCMS": CMS, "rules": [], "defaultProgram": "in-use"}],
        want=(201,),
    )
    r = t.call("DELETE", "/control-programs/in-use")
    assert r.status_code == 422 and r.json()[0]["key"] == "deletingResourceIsReferred"
    t.ok("DELETE", "/calendars/uses-it")
    t.ok("DELETE", "/control-programs/in-use")


# -- loggers ------------------------------------------------------------------------------


def test_a_logger_records_the_events_asked_for_and_a_get_reports_them_once(gateway):
    e, g, t = gateway
    cfg = {
        "address": "faults",
        "ownerCMS": CMS,
        "sourceAddresses": {"blackList": []},
        "recordingMode": {
            "type": "EventRecordingMode",
            "sourceEvents": {"whiteList": ["lampFailure", "supplyLoss"]},
        },
        "reportingMode": {"type": "ImmediateReportingMode", "delay": 0},
    }
    t.ok("POST", "/logger-configs", cfg, want=(201,))
    assert t.ok("GET", "/logger-configs/faults")["address"] == "faults"
    now = time.time()
    with Store(e.db) as s:
        for node, ev, active in (
            ("gw-002", "lampFailure", True),
            ("gw-003", "relayFailure", True),
            ("gw-002", "supplyLoss", False),
        ):
            p = {"v": 1, "ts": iso(T0 + 60), "event": ev, "active": active, "detail": "test"}
            s.ingest([(node, "event", json.dumps(p).encode(), now)])
    rep = t.ok("GET", "/log-reports/faults")
    got = [
        (x["data"]["srcAddress"], x["data"]["eventType"], x["data"]["startEndFlag"])
        for x in rep["entries"]
    ]
    addr = device_address("gw-002") + "/lampMonitor"
    assert got == [(addr, "lampFailure", True), (addr, "supplyLoss", False)]
    assert t.ok("GET", "/log-reports/faults")["entries"] == []  # reported once
    t.ok("DELETE", "/logger-configs/faults")
    assert t.get("/log-reports/faults").status_code == 404


def test_a_periodic_logger_samples_the_attributes_it_names(gateway):
    e, g, t = gateway
    cfg = {
        "address": "power",
        "ownerCMS": CMS,
        "sourceAddresses": {"whiteList": [{"resource": "groups", "address": "high-street"}]},
        "recordingMode": {
            "type": "PeriodicRecordingMode",
            "content": [
                {
                    "function": {
                        "functionType": "LampMonitorFunction",
                        "attributes": [{"name": "activePower"}],
                    }
                }
            ],
            "samplingProfiles": [
                {"samplingStartTime": iso(time.time() + 3600), "samplingPeriod": "PT15M"}
            ],
        },
        "reportingMode": {"type": "ScheduledReportingMode", "times": ["06:00:00"]},
    }
    t.ok("POST", "/logger-configs", cfg, want=(201,))
    rep = t.ok("GET", "/log-reports/power")  # a GET samples at once
    got = sorted(
        (x["data"]["srcAddress"], x["data"]["attributeName"], x["data"]["attributeValue"]["value"])
        for x in rep["entries"]
    )
    assert got == sorted(
        (device_address(n) + "/lampMonitor", "activePower", 31.5) for n in ("gw-001", "gw-002")
    )
    bad = dict(cfg, address="bad")
    bad["recordingMode"] = dict(
        cfg["recordingMode"],
        samplingProfiles=[{"samplingStartTime": iso(time.time()), "samplingPeriod": "every 5 min"}],
    )
    r = t.call("POST", "/logger-configs", bad)
    assert r.status_code == 400 and "samplingPeriod" in r.json()[0]["description"]
    assert t.get("/logger-configs/bad").status_code == 404


def test_the_services_announce_what_the_gateway_does(gateway):
    e, g, t = gateway
    names = {s["name"] for s in t.ok("GET", "/services")}
    assert names == {
        "ConfigurationService",
        "ControlService",
        "DataCollectService",
        "GroupManagementService",
    }
    ctl = t.ok("GET", "/services/ControlService")
    assert ctl["dayOffset"] == 12 and ctl["ccDaySupport"] == "noOccurrences"


def test_the_data_package_service_is_refused_as_not_offered(gateway):
    e, g, t = gateway
    assert t.ok("GET", "/data-packages") == []
    r = t.call("PUT", "/data-packages", [{"packageId": "fw", "releaseId": "1", "ownerCMS": CMS}])
    assert r.status_code == 422 and "lanterna ota" in r.json()[0]["description"]


def test_the_conformance_checks_catch_an_answer_off_the_spec(gateway, openapi):
    """The guard of the two tests above: a Device without its class, and an undocumented
    status, fail the same checks."""
    e, g, _ = gateway
    op = openapi["/devices/{deviceAddress}"]["GET"]
    case = op.Case(
        path_parameters={"deviceAddress": REAL["deviceAddress"]},
        query={"clientAddress": CMS},
        headers={"talq-api-version": "2.7.1"},
    )
    good = _call(case, e, g.url, _tls(e))
    case.validate_response(good, checks=_checks())
    for status, body in (
        (200, {k: v for k, v in good.json().items() if k != "class"}),
        (418, [{"key": "genericError"}]),
    ):
        from schemathesis.core.failures import FailureGroup
        from schemathesis.core.transport import Response

        bad = Response(
            status,
            {"Content-Type": ["application/json"], "talq-api-version": ["2.7.1"]},
            json.dumps(body).encode(),
            good.request,
            0.01,
            True,
        )
        with pytest.raises(FailureGroup):
            case.validate_response(bad, checks=_checks())


def test_devices_classes_and_services_hold_to_the_data_models_own_types(gateway):
    """The Gateway API file types a device's functions only as Function; the data model
    says what each type holds. Every function, attribute, class and service the gateway
    returns is checked against the schema its type names (tests/talqcms.py's validator:
    discriminators followed, attribute types narrowed)."""
    from talqcms import spec

    e, g, t = gateway
    sp = spec(TALQ)
    problems = []
    for d in t.ok("GET", "/devices"):
        problems += [f"{d['name']}: {p}" for p in sp.problems("Device", d)]
    for c in t.ok("GET", "/device-classes"):
        problems += [f"class {c['name']}: {p}" for p in sp.problems("DeviceClass", c)]
    for s in t.ok("GET", "/services"):
        problems += [f"service {s['name']}: {p}" for p in sp.problems("Service", s)]
    assert problems == []
    # the guard: the validator sees a wrong attribute type inside a function
    d = t.ok("GET", f"/devices/{device_address('gw-001')}")
    act = next(f for f in d["functions"] if f["id"] == "lampActuator")
    act["actualLightState"] = {
        "type": "AttributeLevelState",
        "value": {"name": "LevelState", "value": 140},
    }
    assert sp.problems("Device", d)

"""A TALQ CMS drives a district of real firmware through the gateway, end to end: three
nodes of `lanterna sim` (MicroPython processes) at the pace of real time, `lanterna
serve`, mosquitto, `lanterna talq-gateway` with mutual TLS, and tests/talqcms.py as the
CMS (every request the gateway makes checked against the CMS OpenAPI and the data model).

One story, in the order a city would live it:
1. the gateway registers with the CMS (bootstrap), announces services, classes, devices;
2. the CMS writes a group, control programs and a calendar (a yearly special day,
   weekday profiles, a sunset - 30 min switch point) and assigns it to the group: it
   arrives on the group's nodes (their own state says so), not on the third, and
   `lanterna schedule preview` of what they run shows the TALQ program's switch times;
3. an override with an expiration reaches every node of the group and ends on time,
   in node time, on each; the CMS is told the devices' commands (PATCH /devices);
4. a lamp failure injected on a node is in the next log report the CMS receives; during
   a CMS outage the next ones wait in the outbox and all arrive, once each, in order.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
from specs import TALQ
from talqcms import Cms
from talqgw import Talq, start_gateway
from talqpki import make_pki
from test_commander_e2e import Fleet

from lanterna.broker.mosquitto import Mosquitto
from lanterna.fleet.registry import SITES
from lanterna.sim.stop import set_inputs
from lanterna.talq.model import device_address

pytestmark = pytest.mark.skipif(
    TALQ is None, reason="the TALQ OpenAPI files (shared/specs/talq) are not here"
)

NODES = ["greenwich-001", "greenwich-002", "greenwich-003"]
GROUP = ["greenwich-001", "greenwich-002"]
LAT, LON, TZ = SITES["greenwich"]


def level(value: int) -> dict:
    return {"state": {"name": "LevelState", "value": value}}


def program(pid: str, owner: str, fixed: list[tuple[str, int]]) -> dict:
    return {
        "type": "ControlProgramOne",
        "id": pid,
        "ownerCMS": owner,
        "activePeriods": [],
        "fixedTimeControls": [{"startTime": t, "command": level(v)} for t, v in fixed],
        "astroClockTimeControls": [
            {"offset": -30, "solarEventType": "sunset", "operation": "Set", "command": level(100)},
            {"offset": 0, "solarEventType": "sunrise", "operation": "Set", "command": level(0)},
        ],
    }


def sunset_sunrise(night: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The site's sunset on `night` and sunrise the next morning, from astral (not the
    node's astro code)."""
    from astral import LocationInfo
    from astral.sun import sunrise, sunset

    loc = LocationInfo("greenwich", "UK", TZ, LAT, LON).observer
    return sunset(loc, night, tzinfo=ZoneInfo(TZ)), sunrise(
        loc, night + dt.timedelta(days=1), tzinfo=ZoneInfo(TZ)
    )


def talq_switches(night: dt.date, fixed: list[tuple[str, int]]) -> list[tuple[dt.datetime, int]]:
    """The TALQ program's switch points on a night (noon to noon, dayOffset 12), each
    fixed time on the evening's date from noon on, on the next morning before it."""
    z = ZoneInfo(TZ)
    ss, sr = sunset_sunrise(night)
    out = [(ss - dt.timedelta(minutes=30), 100), (sr, 0)]
    for t, v in fixed:
        h, m, _ = (int(x) for x in t.split(":"))
        day = night if h >= 12 else night + dt.timedelta(days=1)
        out.append((dt.datetime(day.year, day.month, day.day, h, m, tzinfo=z), v))
    return sorted(out)


WEEKNIGHT = [("23:00:00", 50)]
WEEKEND = [("01:00:00", 70)]
NEW_YEAR: list[tuple[str, int]] = []


def test_a_cms_runs_the_district_through_the_gateway(tmp_path):
    pki = make_pki(tmp_path / "pki")
    gw_cert = pki.issue("gateway", server_hosts=("127.0.0.1", "localhost"), client=True)
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    fleet = Fleet(tmp_path, broker)
    cms = Cms(pki, gateway_ca=pki.ca)
    gw = None
    try:
        cms.start()
        fleet.sims([("greenwich", len(NODES))], tele_s=10)
        fleet.spawn("serve", "--report-s", "60")
        fleet.wait(
            lambda s: (
                all(r["online"] for r in s.status(s.nodes())) and len(s.nodes()) == len(NODES)
            ),
            120,
            "3 nodes online",
        )
        gw = start_gateway(
            fleet.env, gw_cert, pki.ca, pki.ca, "--cms-url", cms.url, "--cms-ca", str(pki.ca)
        )
        t = Talq(gw.url, pki.ca, cms.client_cert, cms.address)

        # 1. bootstrap and announcements
        assert cms.wait(lambda c: len(c.devices) >= len(NODES) + 1, 60), gw.output()
        assert cms.gateway_address is not None
        assert {device_address(n) for n in NODES} <= set(cms.devices)
        assert [s["name"] for s in cms.services] and "lanterna-sim" in cms.device_classes

        # 2. a calendar to a group
        members = [{"resource": "devices", "address": device_address(n)} for n in GROUP]
        t.ok(
            "POST",
            "/groups",
            [{"address": "riverside", "ownerCMS": cms.address, "members": members}],
            want=(201,),
        )
        t.ok(
            "POST",
            "/control-programs",
            [
                program("weeknight", cms.address, WEEKNIGHT),
                program("weekend", cms.address, WEEKEND),
                program("new-year", cms.address, NEW_YEAR),
            ],
            want=(201,),
        )
        cal = {
            "id": "city-2026",
            "ownerCMS": cms.address,
            "defaultProgram": "weeknight",
            "rules": [
                {
                    "program": "new-year",
                    "condition": {"type": "ccDate", "dates": [{"start": "--12-31"}]},
                },
                {
                    "program": "weekend",
                    "condition": {"type": "ccDay", "days": [{"start": 5, "end": 6}]},
                },
            ],
        }
        t.ok("POST", "/calendars", [cal], want=(201,))
        rid = str(uuid.uuid4())
        t.ok(
            "POST",
            "/assign-commands",
            {
                "addresses": [{"resource": "groups", "address": "riverside"}],
                "entity": {"resource": "calendars", "address": "city-2026"},
            },
            want=(202,),
            query={"talqRequestId": rid},
        )

        def on_nodes(s):
            st = {
                n: json.loads(r[0]) if r[0] else {}
                for n, r in (
                    (n, s.tuples("SELECT state FROM node_status WHERE node=?", (n,))[0])
                    for n in NODES
                )
            }
            return st if all(st[n].get("schedule") == "talq-city-2026" for n in GROUP) else None

        states = fleet.wait(on_nodes, 60, "the calendar's schedule on the group's nodes")
        assert states["greenwich-003"].get("schedule") != "talq-city-2026"
        dev = t.ok("GET", f"/devices/{device_address('greenwich-001')}/lampActuator")
        assert dev["calendarID"]["value"] == "city-2026"

        with fleet.store() as s:
            body = s.tuples(
                "SELECT body FROM schedules WHERE name='talq-city-2026' ORDER BY id DESC LIMIT 1"
            )[0][0]
        sched = tmp_path / "pushed.json"
        sched.write_text(body)
        for night, fixed in (
            (dt.date(2026, 12, 8), WEEKNIGHT),
            (dt.date(2026, 12, 11), WEEKEND),
            (dt.date(2026, 12, 31), NEW_YEAR),
        ):
            r = fleet.cli(
                "schedule",
                "preview",
                str(sched),
                "--date",
                night.isoformat(),
                "--lat",
                str(LAT),
                "--lon",
                str(LON),
                "--tz",
                TZ,
                "--json",
            )
            assert r.returncode == 0, r.stderr
            got = [
                (dt.datetime.fromisoformat(x["time"]), x["level"])
                for x in json.loads(r.stdout)["transitions"]
            ]
            want = talq_switches(night, fixed)
            assert [v for _, v in got] == [v for _, v in want], (night, got, want)
            for (a, _), (b, _) in zip(got, want, strict=True):
                assert abs((a - b).total_seconds()) <= 60, (night, a, b)

        # 3. an override with an expiration, to the group
        end = time.time() + 25
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
        rid = str(uuid.uuid4())
        t.ok(
            "POST",
            "/override-commands",
            {
                "addresses": [{"resource": "groups", "address": "riverside"}],
                "targetCommand": {
                    **level(30),
                    "reason": "override",
                    "cmsRefId": "event-17",
                    "expiration": expiration,
                },
            },
            want=(202,),
            query={"talqRequestId": rid},
        )

        def overridden(s):
            rows = {r["node"]: r for r in s.status(s.nodes())}
            return all(rows[n]["level"] == 30 and rows[n]["mode"] == "override" for n in GROUP)

        fleet.wait(overridden, 30, "the group at 30 % by override")
        with fleet.store() as s:
            acks = {n: s.commands(node=n, limit=1)[0] for n in GROUP}
            third = s.status(s.nodes(ids=["greenwich-003"]))[0]
        assert third["mode"] != "override"
        node_end = {}
        for n, c in acks.items():  # the node's own end of the override, in its time
            ack = json.loads(c["result"]) if isinstance(c["result"], str) else c["result"]
            res = ack["result"]  # the node's ack: its level and when, by its clock, it ends
            assert c["cmd"] == "dim" and "until" in res, c
            until = dt.datetime.fromisoformat(res["until"].replace("Z", "+00:00"))
            assert abs(until.timestamp() - end) <= 2, (n, res)
            node_end[n] = until.timestamp()

        def patched(c):
            return [
                r
                for r in c.requests
                if r.method == "PATCH" and r.query.get("talqOriginRequestId") == rid
            ]

        assert cms.wait(lambda c: bool(patched(c)), 60), gw.output()
        fb = cms.devices[device_address("greenwich-001")]
        act = {f["id"]: f for f in fb["functions"]}["lampActuator"]
        assert act["targetLightCommand"]["value"]["cmsRefId"] == "event-17"
        fb_end = act["feedbackLightCommand"]["value"]["expiration"]
        assert abs(dt.datetime.fromisoformat(fb_end.replace("Z", "+00:00")).timestamp() - end) <= 2

        def ended(s):  # the node's own state after its clock passed the expiration
            out = {}
            for n in GROUP:
                st = json.loads(s.tuples("SELECT state FROM node_status WHERE node=?", (n,))[0][0])
                ts = dt.datetime.fromisoformat(st["ts"].replace("Z", "+00:00")).timestamp()
                if st["mode"] == "override":
                    return None
                out[n] = ts
            return out

        back = fleet.wait(ended, 60, "the override over on the group's nodes")
        for n, ts in back.items():  # by the node's own clock: not early, not late
            assert node_end[n] - 1 <= ts <= node_end[n] + 10, (n, ts, node_end[n])

        # 4. a lamp failure, then an outage of the CMS
        logger = {
            "address": "lamp-faults",
            "ownerCMS": cms.address,
            "sourceAddresses": {"whiteList": [{"resource": "groups", "address": "riverside"}]},
            "recordingMode": {
                "type": "EventRecordingMode",
                "sourceEvents": {"whiteList": ["lampFailure"]},
            },
            "reportingMode": {"type": "ImmediateReportingMode", "delay": 0},
        }
        t.ok("POST", "/logger-configs", logger, want=(201,))
        node = device_address("greenwich-001")
        t.ok(
            "PATCH",
            f"/devices/{node}",
            {
                "address": node,
                "name": "greenwich-001",
                "class": "lanterna-sim",
                "functions": [
                    {
                        "id": "lampActuator",
                        "type": "LampActuatorFunction",
                        "targetLightCommand": {"type": "AttributeCommand", "value": level(100)},
                    }
                ],
            },
            want=(202,),
        )
        fleet.wait(
            lambda s: s.status(s.nodes(ids=["greenwich-001"]))[0]["level"] == 100,
            30,
            "greenwich-001 at 100 %",
        )
        stop = fleet.state / "greenwich-001.stop"
        set_inputs(stop, {"lamp_failed": True})

        def lamp_reports(c, flag):
            return [
                e
                for rep in c.log_reports
                if rep["address"] == "lamp-faults"
                for e in rep["entries"]
                if e["data"]["srcAddress"] == node + "/lampMonitor"
                and e["data"].get("startEndFlag") is flag
            ]

        assert cms.wait(lambda c: bool(lamp_reports(c, True)), 60), gw.output()
        assert lamp_reports(cms, True)[0]["data"]["eventType"] == "lampFailure"

        cms.down()
        set_inputs(stop, {"lamp_failed": False})  # repaired while the CMS is down
        assert cms.wait(
            lambda c: any(r.status == 503 and r.path == "/log-reports" for r in c.requests), 60
        )
        assert not lamp_reports(cms, False)
        cms.up()
        assert cms.wait(lambda c: bool(lamp_reports(c, False)), 90), gw.output()
        assert len(lamp_reports(cms, True)) == 1 and len(lamp_reports(cms, False)) == 1
        assert cms.nonconforming() == [], [
            (r.method, r.path, r.problems) for r in cms.nonconforming()
        ]
    finally:
        if gw is not None:
            gw.stop()
        fleet.stop()
        cms.stop()
        broker.stop()

"""The NGSI-LD mapping (lanterna.bridge.ngsi), its outbox and the bridge, on both store
backends: every entity validates against the official Smart Data Models schema
(../shared/specs/sdm, every $ref resolved offline) and follows the normalized form; the
outbox queues only what changed; the bridge against tests/ngsild_peer.py settles what
the platform took, retries only what failed, refuses a 4xx once."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import jsonschema
import pytest
from ngsild_peer import Peer
from referencing import Registry, Resource

from lanterna.bridge import ngsi, source
from lanterna.bridge.bridge import Bridge
from lanterna.bridge.client import Client
from lanterna.bridge.outbox import Outbox
from lanterna.store import Store


def _sdm() -> Path | None:
    """The Smart Data Models reference schemas: $LANTERNA_SPECS/sdm, else shared/specs/sdm
    beside the checkout or any folder above it (../shared/specs in the workplace), else
    the workplace's own; without them the schema checks skip, saying so."""
    env = os.environ.get("LANTERNA_SPECS")
    places = [Path(env)] if env else []
    places += [p / "shared" / "specs" for p in Path(__file__).resolve().parents]
    places.append(Path("/work/shared/specs"))  # the workplace's, for a clone made elsewhere
    for p in places:
        if (p / "sdm" / "Streetlight" / "schema.json").is_file():
            return p / "sdm"
    return None


SDM = _sdm()
NO_SDM = "the Smart Data Models schemas (../shared/specs/sdm) are not here: set LANTERNA_SPECS"
T0 = 1795600000  # 2026-11-25T07:06:40Z
KEY = bytes(range(32))
UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _registry() -> Registry:
    reg = Registry()
    if SDM is None:
        return reg
    for uri, path in (
        (
            "https://smart-data-models.github.io/data-models/common-schema.json",
            "common-schema.json",
        ),
        (
            "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
            "Environment-schema.json",
            "Environment-schema.json",
        ),
    ):
        reg = reg.with_resource(uri, Resource.from_contents(json.loads((SDM / path).read_text())))
    return reg


REGISTRY = _registry()
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def validate(entity: dict) -> None:
    """The entity as the platform stores it: the normalized form's rules, then its
    key-values form against the official schema of its type."""
    for k, a in entity.items():
        if k in ("id", "type", "@context"):
            continue
        assert a["type"] in ("Property", "Relationship", "GeoProperty"), (k, a)
        assert ("object" in a) if a["type"] == "Relationship" else ("value" in a), (k, a)
        if "observedAt" in a:
            assert UTC.match(a["observedAt"]), (k, a)
    if SDM is None:
        pytest.skip(NO_SDM)
    schema = json.loads((SDM / entity["type"] / "schema.json").read_text())
    v = jsonschema.Draft202012Validator(schema, registry=REGISTRY, format_checker=FORMATS)
    errors = sorted(v.iter_errors(ngsi.keyvalues(entity)), key=str)
    assert not errors, [e.message for e in errors]


def tele(t: float, level: int = 50, evse: bool = True, air: bool = True) -> bytes:
    sensors = {"bh1750": {"fault": None, "lux_x10": [10, 12, 14, 6]}}
    if air:
        sensors |= {
            "bme280": {
                "fault": None,
                "temp_x10": [80, 85, 90, 6],
                "rh_x10": [500, 512, 520, 6],
                "pressure_x10": [10120, 10131, 10140, 6],
            },
            "pms5003": {
                "fault": None,
                "pm1": [1, 2, 3, 6],
                "pm2_5": [3, 4, 5, 6],
                "pm10": [6, 7, 9, 6],
            },
            "scd4x": {"fault": "no answer", "co2": [None, None, None, 0]},
        }
    return json.dumps(
        {
            "v": 1,
            "ts": iso(t),
            "level": level,
            "source": "schedule",
            "energy": {
                "kwh": 1.5, "power_w": 31.5, "switch_on": 2, "burn_h": 3.25, "source": "model"
            },
            "faults": [],
            "sensors": sensors,
            "units": {},
            "evse": {
                "present": True, "state": "C", "status": "Charging", "error_code": "NoError",
                "session": 2, "session_active": True, "session_kwh": 1.25, "total_kwh": 9.5,
                "power_w": 7200,
            } if evse else None,
            "heap_free": 41234,
            "uptime_s": 600,
        }
    ).encode()  # fmt: skip


def state(t: float, level: int, faults=(), schedule="winter@3") -> bytes:
    return json.dumps(
        {
            "v": 1, "ts": iso(t), "level": level, "mode": "schedule", "schedule": schedule,
            "override": None, "fw": "1.2.0", "clock": "ntp", "faults": list(faults),
        }
    ).encode()  # fmt: skip


@pytest.fixture
def fleet(store_target):
    """n1 (air, charge point, group east), n2 (no air, no charge point, lamp failure,
    group east), n3 (registered, never heard from)."""
    with Store(store_target) as s:
        s.put_site("greenwich", 51.48, 0.0, "Europe/London")
        s.put_node("n1", "greenwich", "sim", KEY, lat=51.481, lon=0.001)
        s.put_node("n2", "greenwich", "sim", KEY)
        s.put_node("n3", "greenwich", "sim", KEY)
        s.put_group("east", "the east side")
        s.group_add("east", ["n1", "n2"])
        now = time.time()
        s.ingest(
            [
                ("n1", "status", b"online", now),
                ("n1", "tele", tele(T0), now),
                ("n1", "state", state(T0 + 1, 40), now),
                ("n2", "status", b"online", now),
                ("n2", "tele", tele(T0, evse=False, air=False), now),
                ("n2", "state", state(T0 + 1, 40, ["lampFailure"]), now),
            ]
        )
        yield s


def entities(store) -> dict[str, dict]:
    out = {}
    for page in source.nodes(store):
        for n in page:
            for e in ngsi.node_entities(n, ngsi.Options()):
                out[e["id"]] = e
    for g in source.groups(store):
        e = ngsi.streetlight_group(g)
        if e is not None:
            out[e["id"]] = e
    return out


def test_every_entity_validates_against_its_official_schema(fleet):
    es = entities(fleet)
    assert sorted(es) == [
        "urn:ngsi-ld:AirQualityObserved:greenwich:n1",
        "urn:ngsi-ld:EVChargingStation:greenwich:n1",
        "urn:ngsi-ld:Streetlight:greenwich:n1",
        "urn:ngsi-ld:Streetlight:greenwich:n2",
        "urn:ngsi-ld:Streetlight:greenwich:n3",
        "urn:ngsi-ld:StreetlightGroup:east",
    ]
    for e in es.values():
        validate(e)
    s1 = es["urn:ngsi-ld:Streetlight:greenwich:n1"]
    assert s1["illuminanceLevel"] == {"type": "Property", "value": 0.4, "observedAt": iso(T0 + 1)}
    assert s1["powerState"]["value"] == "low" and s1["status"]["value"] == "ok"
    assert s1["location"]["value"] == {"type": "Point", "coordinates": [0.001, 51.481]}
    assert s1["lifetimePowerConsumption"] == {
        "type": "Property", "value": 1.5, "observedAt": iso(T0), "unitCode": "KWH"
    }  # fmt: skip
    assert s1["refStreetlightGroup"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:StreetlightGroup:east",
    }
    s2 = es["urn:ngsi-ld:Streetlight:greenwich:n2"]
    assert s2["status"]["value"] == "defectiveLamp"
    assert s2["location"]["value"]["coordinates"] == [0.0, 51.48]  # the site's place
    s3 = es["urn:ngsi-ld:Streetlight:greenwich:n3"]
    assert "illuminanceLevel" not in s3 and s3["status"]["value"] == "ok"
    aq = es["urn:ngsi-ld:AirQualityObserved:greenwich:n1"]
    assert aq["temperature"] == {
        "type": "Property",
        "value": 8.5,
        "observedAt": iso(T0),
        "unitCode": "CEL",
    }
    assert aq["relativeHumidity"]["value"] == 0.512 and aq["relativeHumidity"]["unitCode"] == "C62"
    assert aq["pm25"]["value"] == 4 and aq["pm25"]["unitCode"] == "GQ"
    assert aq["pressure"]["value"] == 1013.1 and aq["pressure"]["unitCode"] == "A97"
    assert "co2" not in aq  # the scd4x is faulted: nothing is guessed
    ev = es["urn:ngsi-ld:EVChargingStation:greenwich:n1"]
    assert ev["status"]["value"] == "full" and ev["ocppStatus"]["value"] == "Charging"
    assert ev["availableCapacity"]["value"] == 0 and ev["powerConsumption"]["unitCode"] == "WTT"
    g = es["urn:ngsi-ld:StreetlightGroup:east"]
    assert g["illuminanceLevel"]["value"] == 0.4 and g["activeProgramId"]["value"] == "winter@3"


def test_a_wrong_entity_fails_validation():
    """The check itself can fail: a level above 1 and a status outside the enum."""
    e = {
        "id": "urn:ngsi-ld:Streetlight:s:n",
        "type": "Streetlight",
        "location": ngsi.point(0.0, 51.0),
        "status": ngsi.prop("broken"),
        "illuminanceLevel": ngsi.prop(40),
    }
    with pytest.raises(AssertionError, match="broken"):
        validate(e)


def test_the_outbox_queues_only_what_changed(fleet):
    box = Outbox(fleet, "http://platform.test")
    es = list(entities(fleet).values())
    n_ent, n_attr = box.queue(es)
    assert n_ent == 6 and n_attr == sum(len(e) - 2 for e in es)
    assert box.queue(es) == (0, 0)  # what waits is not queued again
    box.sent(box.pending(100))
    assert box.count() == 0 and box.queue(es) == (0, 0)  # nor what was sent
    fleet.ingest([("n1", "state", state(T0 + 60, 100), time.time())])
    n_ent, n_attr = box.queue(entities(fleet).values())
    waiting = {p.entity: sorted(p.attrs) for p in box.pending(100)}
    # the level, and the faults observed anew (the same values, a newer observedAt)
    assert waiting["urn:ngsi-ld:Streetlight:greenwich:n1"] == [
        "illuminanceLevel", "lampFaults", "powerState", "status"
    ]  # fmt: skip
    assert waiting.keys() == {
        "urn:ngsi-ld:Streetlight:greenwich:n1", "urn:ngsi-ld:StreetlightGroup:east"
    }  # fmt: skip
    # a newer value supersedes the waiting one: still one per attribute
    fleet.ingest([("n1", "state", state(T0 + 120, 0), time.time())])
    box.queue(entities(fleet).values())
    p = {p.entity: p for p in box.pending(100)}["urn:ngsi-ld:Streetlight:greenwich:n1"]
    assert p.attrs["illuminanceLevel"][0]["value"] == 0.0
    assert p.attrs["powerState"][0]["value"] == "off"


@pytest.fixture
def peer():
    with Peer(max_batch=100) as p:
        yield p


def bridge(store, peer, **kw) -> Bridge:
    client = Client(peer.url, context=[*ngsi.SDM_CONTEXTS, ngsi.CORE_CONTEXT])
    return Bridge(store, client, max_backoff_s=0.05, **kw)


def test_one_sync_puts_every_entity_on_the_platform(fleet, peer):
    r = bridge(fleet, peer).once()
    assert (r.sent, r.refused, r.pending, r.error) == (6, 0, 0, None)
    got = peer.entities()
    assert got.keys() == entities(fleet).keys()
    for e in got.values():
        validate({k: v for k, v in e.items() if k != "@context"})
    assert all(u["content_type"] == "application/ld+json" for u in peer.upserts())


def test_a_207_retries_exactly_the_failed_entities(fleet, peer):
    failing = {"urn:ngsi-ld:Streetlight:greenwich:n1", "urn:ngsi-ld:Streetlight:greenwich:n2"}
    peer.fail_entities(failing, status=503)
    b = bridge(fleet, peer)
    r = b.once()
    assert r.sent == 4 and r.retried == 2 and r.pending == 2 and r.refused == 0
    peer.clear()
    while b.wait_until > time.monotonic():  # the backoff (max 0.05 s here) runs out
        time.sleep(0.01)
    r = b.deliver(type(r)())
    assert r.sent == 2 and r.pending == 0
    last = peer.upserts()[-1]
    assert sorted(e["id"] for e in last["entities"]) == sorted(failing)


def test_a_4xx_is_refused_once_and_not_retried_until_it_changes(fleet, peer, caplog):
    bad = "urn:ngsi-ld:EVChargingStation:greenwich:n1"
    peer.fail_entities({bad}, status=400)
    b = bridge(fleet, peer)
    r = b.once()
    assert r.refused == 1 and r.sent == 5 and r.pending == 0
    assert r.refusals[0]["entity"] == bad and "refused" in caplog.text
    peer.clear()
    n = len(peer.upserts())
    r = b.once(full=True)
    assert r.queued_entities == 0 and len(peer.upserts()) == n  # nothing sent again
    fleet.ingest([("n1", "tele", tele(T0 + 60), time.time())])
    r = b.once()
    assert bad in {e["id"] for e in peer.upserts()[-1]["entities"]}
    assert r.refused == 0 and r.pending == 0


def test_the_platform_down_keeps_everything_and_the_restarted_bridge_delivers_it(
    fleet, peer, store_target
):
    b = bridge(fleet, peer)
    b.once()
    peer.down()
    for k in range(5):  # level changes while the platform is away
        fleet.ingest([("n1", "state", state(T0 + 60 * (k + 1), 10 * k), time.time())])
        r = b.once()
        assert r.pending == 2 and r.sent == 0  # n1's Streetlight and its group
    with Store(store_target) as again:  # a new bridge: the outbox is in the store
        peer.up()
        r = bridge(again, peer).once()
        assert r.sent == 2 and r.pending == 0
    sl = peer.entities()["urn:ngsi-ld:Streetlight:greenwich:n1"]
    assert sl["illuminanceLevel"]["value"] == 0.4
    assert sl["illuminanceLevel"]["observedAt"] == iso(T0 + 300)
    ups = [
        e
        for u in peer.upserts()
        for e in u["entities"]
        if e["id"].endswith("Streetlight:greenwich:n1")
    ]
    assert len(ups) == 2  # the first sync, and the newest level once: nothing doubled


def test_ten_minutes_without_the_platform_deliver_every_change_once(store_target, peer):
    """30 nodes sending telemetry every minute (their time) while the platform refuses
    connections for ten minutes, the bridge syncing every minute: when it is back, each
    changed entity arrives once, with its newest values; nothing is lost or doubled."""
    nodes = [f"n{i:02d}" for i in range(30)]
    with Store(store_target) as s:
        s.put_site("lisbon", 38.71, -9.14, "Europe/Lisbon")
        for n in nodes:
            s.put_node(n, "lisbon", "sim", KEY)
        now = time.time()
        s.ingest([(n, "tele", tele(T0, level=50), now) for n in nodes])
        b = bridge(s, peer, batch=20)
        assert b.once().sent == 90  # 30 Streetlights, 30 AirQualityObserved, 30 stations
        peer.down()
        for minute in range(1, 11):
            at = now + 60 * minute  # the controller's clock of receipt, as serve stores it
            s.ingest([(n, "tele", tele(T0 + 60 * minute, level=50 + minute), at) for n in nodes])
            r = b.once()
            assert r.sent == 0
        assert b.outbox.count() == 90  # one entry per entity, superseded minute by minute
        before = len(peer.upserts())
        peer.up()
        b.wait_until = 0.0  # the platform is back: no need to wait out the backoff here
        r = b.once()
        assert (r.sent, r.pending, r.refused) == (90, 0, 0)
        after = [e for u in peer.upserts()[before:] for e in u["entities"]]
        assert len(after) == 90 and len({e["id"] for e in after}) == 90  # each once
        for n in nodes:
            sl = peer.entities()[f"urn:ngsi-ld:Streetlight:lisbon:{n}"]
            assert sl["illuminanceLevel"] == {
                "type": "Property", "value": 0.6, "observedAt": iso(T0 + 600)
            }  # fmt: skip
            aq = peer.entities()[f"urn:ngsi-ld:AirQualityObserved:lisbon:{n}"]
            assert aq["dateObserved"]["value"] == iso(T0 + 600)
        assert b.once().sent == 0  # and nothing is sent again


def test_a_tenant_has_its_own_entities_and_its_own_outbox(fleet, peer):
    ctx = [*ngsi.SDM_CONTEXTS, ngsi.CORE_CONTEXT]
    a = Bridge(fleet, Client(peer.url, tenant="lighting", context=ctx))
    assert a.once().sent == 6
    assert len(peer.entities("lighting")) == 6 and peer.entities() == {}
    b = Bridge(fleet, Client(peer.url, context=ctx))  # the default tenant: not yet sent
    assert b.once().sent == 6 and len(peer.entities()) == 6


def test_link_mode_sends_json_with_the_context_in_a_link_header(fleet, peer):
    client = Client(peer.url, context=["https://city.example/lanterna-context.jsonld"], link=True)
    assert Bridge(fleet, client).once().sent == 6
    u = peer.upserts()[-1]
    assert u["content_type"] == "application/json"
    assert all("@context" not in e for e in u["entities"])

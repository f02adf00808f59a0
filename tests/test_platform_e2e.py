"""The city platform end to end: a 30-node district of real firmware (`lanterna sim`),
`lanterna serve` into the store, `lanterna bridge ngsi-ld` to the test peer
(tests/ngsild_peer.py), and `lanterna export` of the same store."""

from __future__ import annotations

import json

from ngsild_peer import Peer
from test_bridge_ngsi import validate
from test_commander_e2e import fleet  # noqa: F401 -- the fixture: broker, serve, sims

N = 30


def ids(peer: Peer, etype: str) -> set[str]:
    return {i for i, e in peer.entities().items() if e["type"] == etype}


def level_at(peer: Peer, node: str) -> float | None:
    e = peer.entities().get(f"urn:ngsi-ld:Streetlight:greenwich:{node}")
    return None if e is None or "illuminanceLevel" not in e else e["illuminanceLevel"]["value"]


def test_the_district_on_the_platform_through_an_outage_and_as_open_data(fleet):  # noqa: F811
    fleet.sims([("greenwich", N)], tele_s=10)
    fleet.spawn("serve", "--report-s", "60")
    nodes = [f"greenwich-{i:03d}" for i in range(1, N + 1)]

    def all_reported(s):
        return all(r["online"] and r["level"] is not None for r in s.status(s.nodes())) and all(
            s.telemetry_count(n) for n in nodes
        )

    fleet.wait(all_reported, 180, f"{N} nodes online with telemetry")
    with Peer(max_batch=100) as peer:
        interval = 1.0
        fleet.spawn(
            "bridge", "ngsi-ld", "--url", peer.url, "--interval", str(interval), "--batch", "25"
        )

        def complete(p: Peer) -> bool:
            return all(
                len(ids(p, t)) == N
                for t in ("Streetlight", "AirQualityObserved", "EVChargingStation")
            )

        assert peer.wait_for(complete, 60), {t: len(ids(peer, t)) for t in ("Streetlight",)}
        for e in peer.entities().values():
            validate({k: v for k, v in e.items() if k != "@context"})
        assert all(len(u["entities"]) <= 25 for u in peer.upserts())

        # A level change reaches the node's Streetlight within an interval of the store.
        r = fleet.cli("dim", "70", "--node", nodes[0], "--json", "--timeout", "20")
        assert r.returncode == 0, r.stderr
        fleet.wait(lambda s: s.status(s.nodes(ids=[nodes[0]]))[0]["level"] == 70, 30, "level 70")
        assert peer.wait_for(lambda p: level_at(p, nodes[0]) == 0.7, 3 * interval + 5)

        # The platform away: changes wait in the outbox and arrive once when it is back.
        peer.down()
        changed = {nodes[k]: 10 + k for k in range(1, 6)}
        for node, level in changed.items():
            r = fleet.cli("dim", str(level), "--node", node, "--json", "--timeout", "20")
            assert r.returncode == 0, r.stderr
        fleet.wait(
            lambda s: all(
                x["level"] == changed[x["node"]] for x in s.status(s.nodes(ids=list(changed)))
            ),
            30,
            "the five levels stored",
        )
        peer.up()
        assert peer.wait_for(
            lambda p: all(level_at(p, n) == lv / 100 for n, lv in changed.items()), 60
        )
        # Every observation sent once over the whole run (the outage included): the
        # same (value, observedAt) of an attribute never twice; the new levels all there.
        seen: dict[tuple[str, str], list[tuple]] = {}
        for u in peer.upserts():
            if u["status"] not in (201, 204):
                continue
            for e in u["entities"]:
                for k, a in e.items():
                    if isinstance(a, dict) and "observedAt" in a:
                        seen.setdefault((e["id"], k), []).append(
                            (json.dumps(a["value"]), a["observedAt"])
                        )
        for key, obs in seen.items():
            assert len(obs) == len(set(obs)), (key, obs)
        for n, lv in changed.items():
            sid = f"urn:ngsi-ld:Streetlight:greenwich:{n}"
            assert any(v == json.dumps(lv / 100) for v, _ in seen[(sid, "illuminanceLevel")])

    # Open data from the same store: one GeoJSON feature per node.
    r = fleet.cli("export", "--format", "geojson")
    assert r.returncode == 0, r.stderr
    fc = json.loads(r.stdout)
    assert fc["type"] == "FeatureCollection"
    assert sorted(f["properties"]["node"] for f in fc["features"]) == nodes
    for f in fc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert f["geometry"]["type"] == "Point" and -180 <= lon <= 180 and -90 <= lat <= 90
    r = fleet.cli("export", "--format", "csv", "--since", "2000-01-01")
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.startswith("node,site,ts,level") and len(rows) >= N
    out = fleet.tmp / "district.geojson"
    r = fleet.cli("export", "--format", "geojson", "--out", str(out))
    assert r.returncode == 0, r.stderr
    written = json.loads(out.read_text())  # telemetry moves on: the same nodes, not values
    assert sorted(f["properties"]["node"] for f in written["features"]) == nodes
    assert f"wrote {N} features" in r.stderr
    r = fleet.cli("export", "--format", "geojson", "--out", str(fleet.tmp / "no" / "x.json"))
    assert r.returncode == 1 and "No such file or directory" in r.stderr
    assert "Traceback" not in r.stderr
    r = fleet.cli("export", "--format", "csv", "--since", "yesterday")
    assert r.returncode == 4 and "--since" in r.stderr

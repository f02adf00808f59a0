"""A virtual node with a network link end to end (docs/firmware.md, "Network link"): the
real firmware on the sim board, its WLAN the sim's model of the port's network module,
against mosquitto. The AP goes away for 30 minutes of node time: the broker sees the
node's socket go at once (its Will), the lamp keeps its level, the process is the same
one (no reboot), and once the AP is back the node is online again and reports the link's
outage in a link event."""

from __future__ import annotations

import json

from observer import Observer

from lanterna.sim.district import District, prepare

NODE = "greenwich-001"
TOPIC = f"lanterna/v1/greenwich/{NODE}/"
WARP = 60  # 30 node minutes in 30 host seconds
DOWN_AT, DOWN_S = 120, 1800  # node seconds since boot


def test_the_ap_goes_for_30_minutes_and_the_node_comes_back_to_the_broker(
    mosquitto, tmp_path, monkeypatch
):
    nodes = prepare(tmp_path / "state", 1, "greenwich", mosquitto.url, tele_s=60)
    cfg_path = nodes[0].dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["network"] = {"wlan": {"ssid": "pole-net", "password": "right-key-1"}}
    cfg_path.write_text(json.dumps(cfg))
    creds = json.loads((tmp_path / "state" / "credentials.json").read_text())
    mosquitto.add_user(NODE, creds[NODE]["password"])
    scenario = {"ssid": "pole-net", "password": "right-key-1", "down": [[DOWN_AT, DOWN_S]]}
    (tmp_path / "air.json").write_text(json.dumps(scenario))
    monkeypatch.setenv("LANTERNA_SIM_NET", str(tmp_path / "air.json"))
    watch = Observer(mosquitto, [TOPIC + "#"])
    d = District(nodes, warp=WARP, board="sim-s3")
    d.start()
    try:
        # Up: the link first (an address), then the broker.
        watch.first(TOPIC + "status", b"online", timeout=60)
        up = [e for e in watch.json(TOPIC + "event") if e["event"] == "link"]
        assert up and up[0]["up"] and up[0]["status"] == "got_ip" and up[0]["if"] == "wlan"
        pid = nodes[0].proc.pid
        mark = watch.mark()
        # The AP goes: the node drops its socket at once (not a keepalive later, 90 s of
        # host time), so the broker publishes its Will.
        watch.first(TOPIC + "status", b"offline", since=mark, timeout=60)
        mark = watch.mark()
        # Back after 30 node minutes and a jittered retry (at most 5 node minutes).
        watch.first(TOPIC + "status", b"online", since=mark, timeout=120)

        # The up event tells the whole outage: its down event (queued while the broker was
        # out of reach) may have left the bounded outbox under 30 minutes of telemetry.
        def back(ms) -> bool:
            evs = [json.loads(m.payload) for m in ms if m.topic == TOPIC + "event"]
            return any(e.get("event") == "link" and e.get("up") and e.get("lost") for e in evs)

        watch.wait(back, timeout=60, what="the link's up event after the outage")
        again = [e for e in watch.json(TOPIC + "event") if e["event"] == "link" and e["up"]][-1]
        assert again["lost"] == "beacon_timeout" and again["down_s"] >= DOWN_S - 5
        assert again["tries"] >= 2  # retried through the outage
        # The same process throughout, booted once; the lamp lit by its failsafe level.
        assert nodes[0].proc.poll() is None and nodes[0].proc.pid == pid
        boots = [e for e in watch.json(TOPIC + "event") if e["event"] == "boot"]
        assert len(boots) == 1
        state = watch.json(TOPIC + "state")[-1]
        assert state["level"] == 100
    finally:
        d.stop()
        watch.stop()

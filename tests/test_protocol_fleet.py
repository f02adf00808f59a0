"""The protocol-level fleet (lanterna.sim.protocol) against a real mosquitto: 300 nodes on
3 connections come online (retained), send telemetry per node from a jittered phase,
answer the controller's real commander, refuse replayed, forged and misaddressed
commands with the node's own errors, lose no QoS 1 telemetry across a broker restart
(their outboxes hold it), and end with every node's retained status offline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from observer import Observer

from lanterna.context import Broker
from lanterna.fleet.commander import Commander
from lanterna.sim import protocol as P
from lanterna.store import Store
from lanterna.wire import protocol

SCHEMAS = {
    leaf: json.loads((Path(protocol.__file__).with_name("schemas") / f"{leaf}.json").read_text())
    for leaf in ("state", "tele", "event", "ack")
}
NODES = 300
CONNS = 3
TELE_S = 4
SITE = "greenwich"
PREFIX = f"lanterna/v1/{SITE}/"
SIM_PASSWORD = "sim-test-secret"


def _fleet(tmp_path: Path, mosquitto, nodes: int = NODES, conns: int = CONNS, tele_s=TELE_S):
    st = P.prepare(tmp_path / "state", nodes, SITE)
    store = Store(tmp_path / "lanterna.db")
    P.register(store, st["nodes"], SITE, 51.48, 0.0, "Europe/London")
    mosquitto.add_user(P.USER, SIM_PASSWORD)
    ns = P.make_nodes(st["nodes"], SITE, tmp_path / "state", tele_s)
    fleet = P.Fleet(ns, "127.0.0.1", mosquitto.port, P.USER, SIM_PASSWORD, conns)
    return st, store, fleet


@pytest.fixture
def running(tmp_path, mosquitto):
    st, store, fleet = _fleet(tmp_path, mosquitto)
    run = P.Running(fleet)
    try:
        assert run.ready.wait(30), "not every node came online"
        yield st, store, fleet, run
    finally:
        run.stop()
        store.close()


def _retained_status(mosquitto) -> dict[str, bytes]:
    obs = Observer(mosquitto, topics=(PREFIX + "+/status",))
    try:
        msgs = obs.wait(lambda m: len({t for t, _, r in m if r}) >= NODES, what="retained")
        return {t.split("/")[3]: p for t, p, r in msgs if r}
    finally:
        obs.stop()


def _ack(obs: Observer, node: str, cmd_id: str) -> dict:
    return obs.ack(f"{PREFIX}{node}/ack", cmd_id)


def test_nodes_come_online_retained_and_send_jittered_telemetry(running, mosquitto):
    st, _store, fleet, _run = running
    assert len(fleet.conns) == CONNS
    status = _retained_status(mosquitto)
    assert set(status) == set(st["nodes"]) and set(status.values()) == {b"online"}

    obs = Observer(mosquitto, topics=(PREFIX + "+/tele", PREFIX + "+/state"))
    try:
        msgs = obs.wait(
            lambda m: len({t for t, _, _ in m if t.endswith("/tele")}) == NODES,
            what="telemetry from every node",
        )
        for t, p, _ in msgs:  # what a protocol node publishes is what the schemas say
            jsonschema.validate(json.loads(p), SCHEMAS[t.rsplit("/", 1)[1]])
        first: dict[str, str] = {}
        for t, p, _ in msgs:
            if t.endswith("/tele"):
                first.setdefault(t.split("/")[3], json.loads(p)["ts"])
        # Each node's phase is its own (nodes boot at different times): the first
        # messages of the fleet spread over the period, not one instant.
        assert len(set(first.values())) >= 3
        tele = json.loads(next(p for t, p, _ in msgs if t.endswith("/tele")))
        assert set(tele) >= {"v", "ts", "level", "source", "energy", "uptime_s", "mqtt_dropped"}
    finally:
        obs.stop()


def test_commands_from_the_real_commander_are_acked_and_bad_ones_refused(running, mosquitto):
    st, store, fleet, _run = running
    broker = Broker("127.0.0.1", mosquitto.port, "controller", mosquitto.users["controller"])
    targets = store.nodes(ids=list(st["nodes"])[:50])
    outs = Commander(store).send_mqtt(broker, targets, "dim", {"level": 40, "until_s": 600})
    assert {o.status for o in outs} == {"ok"}
    assert all(o.result and o.result["level"] == 40 for o in outs)

    node = targets[0].id
    key = bytes.fromhex(st["nodes"][node])
    obs = Observer(mosquitto, topics=(PREFIX + f"{node}/#",))
    try:
        last = store.next_ctrs([node])[node]  # above what the commander used
        good = protocol.sign(key, node, "dim", {"level": 7}, last)
        obs.publish(f"{PREFIX}{node}/cmd", protocol.encode(good))
        assert _ack(obs, node, good["id"])["ok"] is True
        obs.publish(f"{PREFIX}{node}/cmd", protocol.encode(good))  # replayed
        forged = dict(protocol.sign(key, node, "dim", {"level": 8}, last + 1), ctr=last + 2)
        wrong_key = protocol.sign(bytes(32), node, "dim", {"level": 9}, last + 3)
        other = protocol.sign(key, targets[1].id, "dim", {"level": 9}, last + 4)
        for env in (forged, wrong_key, other):
            obs.publish(f"{PREFIX}{node}/cmd", protocol.encode(env))
        obs.publish(f"{PREFIX}{node}/cmd", b"not json")
        assert _ack(obs, node, forged["id"])["error"] == "bad_mac"
        assert _ack(obs, node, wrong_key["id"])["error"] == "bad_mac"
        assert _ack(obs, node, other["id"])["error"] == "wrong_node"
        obs.wait(lambda m: sum(t.endswith("/ack") for t, _, _ in m) >= 6, what="six acks")
        acks = obs.json(f"{PREFIX}{node}/ack")
        for a in acks:
            jsonschema.validate(a, SCHEMAS["ack"])
        replay = [a for a in acks if a["id"] == good["id"] and not a["ok"]]
        assert replay == [
            {
                "v": 1,
                "id": good["id"],
                "node": node,
                "ok": False,
                "error": "replay",
                "detail": f"ctr {last} not above {last}",
                "ctr": last,
            }
        ]
        garbage = [a for a in acks if a["id"] is None]
        assert [(a["error"], a["detail"]) for a in garbage] == [("malformed", "not a JSON object")]
        # Only the good ones changed the lamp: its last state is level 7, an override.
        obs.wait(lambda m: any(t.endswith("/state") for t, _, _ in m), what="state")
        state = obs.json(f"{PREFIX}{node}/state")[-1]
        assert state["level"] == 7 and state["mode"] == "override"
    finally:
        obs.stop()


def test_the_outbox_keeps_telemetry_across_a_broker_restart(tmp_path, mosquitto):
    _st, store, fleet = _fleet(tmp_path, mosquitto, nodes=200, conns=2, tele_s=2)
    # A persistent session: the broker queues (and persists) what arrives for it.
    obs = Observer(mosquitto, topics=(PREFIX + "+/tele",), client_id="tele-count", clean=False)
    run = P.Running(fleet)
    try:
        assert run.ready.wait(30)
        obs.wait(lambda m: len(m) >= 100, what="some telemetry before the restart")
        connects = sum(c.connects for c in fleet.conns)
        mosquitto.restart()  # SIGTERM: mosquitto saves its persistence file, then starts
        obs.wait(
            lambda _m: sum(c.connects for c in fleet.conns) >= connects + 2 and fleet.all_online(),
            what="every node back online",
        )
        n0 = obs.mark()
        obs.wait(lambda m: len(m) >= n0 + 100, what="telemetry after the restart")
    finally:
        summary = run.stop()
        store.close()
    # Telemetry was made while the broker was away (held in the outboxes), none dropped.
    assert summary["dropped"] == 0 and summary["unsent"] == 0
    assert summary["held_offline"] > 0
    sent = {n.id: n.seq for n in fleet.nodes}

    def complete(msgs) -> bool:
        got: dict[str, set] = {}
        for t, p, _ in msgs:
            got.setdefault(t.split("/")[3], set()).add(json.loads(p)["ts"])
        return {k: len(v) for k, v in got.items()} == sent

    try:
        obs.wait(complete, what="every node's every telemetry message")
    finally:
        obs.stop()


def test_a_clean_stop_leaves_every_node_offline(tmp_path, mosquitto):
    st, store, fleet = _fleet(tmp_path, mosquitto)
    run = P.Running(fleet)
    assert run.ready.wait(30)
    summary = run.stop()
    store.close()
    assert summary["online"] == 0 and summary["unsent"] == 0
    status = _retained_status(mosquitto)
    assert set(status) == set(st["nodes"]) and set(status.values()) == {b"offline"}


def test_the_cli_fleet_says_ready_and_stops_cleanly(tmp_path, mosquitto, spawn, clean_env):
    # The subprocess interface other benches use: `ready` once every node is online,
    # `stopped` (every node offline, nothing left unsent) after SIGINT.
    lanterna = str(Path(sys.executable).with_name("lanterna"))
    env = dict(clean_env, LANTERNA_HOME=str(tmp_path / "home"), LANTERNA_BROKER=mosquitto.url)
    base = [lanterna, "sim", "--protocol", "40", "--state-dir", str(tmp_path / "st"), "--json"]
    init = subprocess.run([*base, "--init-only"], env=env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    st = json.loads((tmp_path / "st" / f"protocol-{SITE}.json").read_text())
    mosquitto.add_user(P.USER, st["password"])
    p = spawn([*base, "--connections", "2", "--tele-period", "2"], env=env)
    ready = json.loads(p.wait_for('"event": "ready"'))
    assert ready["online"] == 40 and ready["connections"] == 2
    assert p.stop(signal.SIGINT) == 0
    stopped = json.loads(p.wait_for('"event": "stopped"'))
    assert stopped["online"] == 0 and stopped["unsent"] == 0
    with Store(tmp_path / "home" / "lanterna.db") as s:
        assert len(s.nodes(site=SITE)) == 40


def test_bad_cli_input_is_refused_before_anything_is_written(tmp_path, clean_env):
    lanterna = str(Path(sys.executable).with_name("lanterna"))
    env = dict(clean_env, LANTERNA_HOME=str(tmp_path / "home"), LANTERNA_BROKER="mqtt://x:1")
    for args, says in [
        (["--protocol", "3", "--connections", "5"], "--connections 5: more than the 3 nodes"),
        (["--json"], "--json go with --protocol"),
        (["--protocol", "3", "--site", "no where"], "--site 'no where'"),
        (["--protocol", "3", "--site", "nowhere"], "site 'nowhere' is not built in"),
    ]:
        st = tmp_path / "st"
        r = subprocess.run(
            [lanterna, "sim", *args, "--state-dir", str(st)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 4 and says in r.stderr, (args, r.stderr)
        assert not st.exists()


def test_counters_outlive_a_restart_of_the_fleet(tmp_path):
    # The counter files (the handler's own format) are saved at the stop and loaded at the
    # start: a command accepted before a restart is a replay after it.
    from lanterna.sim.protocol_node import FLASH, firmware

    firmware()

    class Conn:
        connected = False

        def __init__(self) -> None:
            self.sent: list = []

        def publish(self, node, topic, payload, qos=1, retain=False) -> bool:
            self.sent.append((topic, payload))
            return True

    st = P.prepare(tmp_path / "state", 2, SITE)
    node, key = next(iter(st["nodes"].items()))
    env = protocol.encode(protocol.sign(bytes.fromhex(key), node, "dim", {"level": 3}, 5))
    for run in range(2):
        (n, _other) = P.make_nodes(st["nodes"], SITE, tmp_path / "state", 60)
        n.conn = Conn()
        ack = n.command(n.base + "cmd", env)
        assert ack is not None
        if run == 0:
            assert ack["ok"] is True
            FLASH.save(P.flash_file(tmp_path / "state"))  # what Fleet.run does at its end
            FLASH.files = {}  # a new process
        else:
            assert (ack["error"], ack["ctr"]) == ("replay", 5)

"""A virtual district against a real mosquitto: ten nodes (the real firmware, one
MicroPython process each) come online with their own credentials; everything they
publish validates against its schema; a node killed with SIGKILL is announced offline
by the broker (its Will); commands are authenticated: a good one changes the lamp, a
replayed one, one under a wrong key and one addressed to another node are refused
with an answer and change nothing."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import jsonschema
import pytest
from observer import Observer

from lanterna.sim.district import District, prepare
from lanterna.wire import protocol

SCHEMAS = Path(protocol.__file__).with_name("schemas")
NODES = 10
PREFIX = "lanterna/v1/greenwich/"


def _count(msgs, leaf: str, payload: bytes | None = None) -> int:
    return len(
        {t for t, p, _ in msgs if t.endswith("/" + leaf) and (payload is None or p == payload)}
    )


@pytest.fixture
def district(mosquitto, tmp_path):
    nodes = prepare(tmp_path / "state", NODES, "greenwich", mosquitto.url, tele_s=10)
    creds = json.loads((tmp_path / "state" / "credentials.json").read_text())
    mosquitto.add_users({node: c["password"] for node, c in creds.items()})
    obs = Observer(mosquitto)
    d = District(nodes, warp=6, board="sim-s3")
    d.start()
    try:
        yield d, obs, creds
    finally:
        d.stop()
        obs.stop()


def _ack(obs, node: str, cmd_id: str) -> dict:
    def seen(msgs):
        return any(
            t == f"{PREFIX}{node}/ack" and json.loads(p).get("id") == cmd_id for t, p, _ in msgs
        )

    msgs = obs.wait(seen, what=f"ack {cmd_id}")
    return next(
        json.loads(p)
        for t, p, _ in msgs
        if t == f"{PREFIX}{node}/ack" and json.loads(p).get("id") == cmd_id
    )


def test_district_publishes_valid_payloads_keeps_its_will_and_guards_its_commands(district):
    d, obs, creds = district
    msgs = obs.wait(lambda m: _count(m, "status", b"online") == NODES, what="all online")
    msgs = obs.wait(lambda m: _count(m, "tele") == NODES, what="telemetry from every node")
    schemas = {
        leaf: json.loads((SCHEMAS / f"{leaf}.json").read_text())
        for leaf in ("state", "tele", "event", "ack")
    }
    for topic, payload, _ in msgs:
        leaf = topic.rsplit("/", 1)[1]
        if leaf == "status":
            assert payload in (b"online", b"offline")
        else:
            jsonschema.validate(json.loads(payload), schemas[leaf])
    boots = [json.loads(p) for t, p, _ in msgs if t.endswith("/event") and b'"boot"' in p]
    assert len({b["ts"] for b in boots}) >= 1 and len(boots) >= NODES

    # Commands to node 1: a good dim, then the same again (replay), one signed with a
    # wrong key, one for node 2 published on node 1's topic.
    node, key = "greenwich-001", bytes.fromhex(creds["greenwich-001"]["key"])
    good = protocol.sign(key, node, "dim", {"level": 37}, 1)
    obs.publish(f"{PREFIX}{node}/cmd", protocol.encode(good))
    assert _ack(obs, node, good["id"])["ok"] is True
    obs.wait(
        lambda m: any(
            t == f"{PREFIX}{node}/state" and json.loads(p)["level"] == 37 for t, p, _ in m
        ),
        what="state level 37",
    )
    replay = dict(good)
    obs.publish(f"{PREFIX}{node}/cmd", protocol.encode(replay))
    forged = protocol.sign(bytes(32), node, "dim", {"level": 5}, 2)
    other = protocol.sign(key, "greenwich-002", "dim", {"level": 5}, 3)
    obs.publish(f"{PREFIX}{node}/cmd", protocol.encode(forged))
    obs.publish(f"{PREFIX}{node}/cmd", protocol.encode(other))
    assert _ack(obs, node, forged["id"])["error"] == "bad_mac"
    assert _ack(obs, node, other["id"])["error"] == "wrong_node"
    acks = [json.loads(p) for t, p, _ in obs.msgs if t == f"{PREFIX}{node}/ack"]
    assert [a["error"] for a in acks if a["id"] == good["id"] and not a["ok"]] == ["replay"]
    for a in acks:
        jsonschema.validate(a, schemas["ack"])
    states = [json.loads(p) for t, p, _ in obs.msgs if t == f"{PREFIX}{node}/state"]
    assert states[-1]["level"] == 37 and states[-1]["mode"] == "override"

    # SIGKILL: no goodbye from the node; the broker publishes its Will.
    victim = d.nodes[2]
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGKILL)
    obs.wait(
        lambda m: any(t == f"{PREFIX}{victim.node}/status" and p == b"offline" for t, p, _ in m),
        what="the Will of the killed node",
    )


def test_a_tls_district_gives_every_node_the_broker_s_ca(tmp_path):
    # The nodes of an mqtts:// district verify the broker (lamp.net.link), so each gets
    # the CA as ca.der; without one the district is refused before anything is written.
    from cryptography import x509

    from lanterna.broker.tls import CA_CERT, ensure_ca
    from lanterna.broker.url import parse
    from lanterna.device.provision import node_ca
    from lanterna.sim.district import SimError

    url = "mqtts://127.0.0.1:8883"
    with pytest.raises(SimError, match="the nodes need the broker's CA"):
        prepare(tmp_path / "none", 2, "greenwich", url)
    assert not (tmp_path / "none").exists()

    (tmp_path / "broker").mkdir()
    ensure_ca(tmp_path / "broker", rotate=False)  # what `lanterna broker config --tls` makes
    ca = node_ca(parse(url, "--broker"), tmp_path / "broker" / CA_CERT)
    nodes = prepare(tmp_path / "state", 2, "greenwich", url, ca=ca)
    for n in nodes:
        cfg = json.loads((n.dir / "config.json").read_text())
        assert cfg["mqtt"]["tls"] is True and cfg["mqtt"]["port"] == 8883
        der = (n.dir / "ca.der").read_bytes()
        assert x509.load_der_x509_certificate(der).subject.rfc4514_string().endswith("CA")
    # Back to a plain broker: the CA goes with the TLS it was for.
    for n in prepare(tmp_path / "state", 2, "greenwich", "mqtt://127.0.0.1:1883"):
        assert not (n.dir / "ca.der").exists()

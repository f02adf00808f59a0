"""Conformance: one command stream to a real-firmware node (MicroPython, the sim board,
as `lanterna sim` runs it) and to a protocol-fleet node with the same id and key, each on
its own mosquitto (both answer on the same topics); their acks must agree field by field.

Normalised, because they must differ: a dim's `result.until` (an instant computed from
each node's own clock when it accepted the command). Nothing else.

The negative tests change the canonical form the protocol node verifies with (keys sorted
backwards; a space after each comma) and check that the comparison catches it."""

from __future__ import annotations

import builtins
import itertools
import json

import pytest
from observer import Observer

from lanterna.broker.mosquitto import Mosquitto
from lanterna.sim import protocol as P
from lanterna.sim.district import District, prepare
from lanterna.sim.protocol_node import ProtoNode
from lanterna.wire import protocol

SITE = "greenwich"
SIM_PASSWORD = "sim-conformance-secret"
SCHEDULE = {
    "version": 1,
    "id": "conf-1",
    "profiles": {"night": [{"at": "sunset", "level": 80}, {"at": "sunrise", "level": 0}]},
    "calendar": [{"profile": "night"}],
}
BUNDLE = "ab" * 32


def _stream(key: bytes, node: str) -> list[tuple[str, bytes]]:
    """(what, payload) in order: every path of the node's handler."""

    ids = itertools.count(1)

    def s(cmd: str, args: dict, ctr: int, n: str = node, k: bytes = key) -> dict:
        return protocol.sign(k, n, cmd, args, ctr, id=f"conf-{next(ids)}-{cmd}")

    first = s("dim", {"level": 30, "fade_s": 2, "until_s": 600}, 1)
    bad_mac = dict(s("dim", {"level": 5}, 20), ctr=21)
    out = [
        ("dim with fade and duration", first),
        ("back to the schedule", s("dim", {"level": None, "fade_s": 1}, 2)),
        ("schedule", s("schedule", {"schedule": SCHEDULE}, 3)),
        ("schedule that does not validate", s("schedule", {"schedule": {"version": 1}}, 4)),
        ("config_set tele_s", s("config_set", {"key": "tele_s", "value": 30}, 5)),
        ("config_set out of range", s("config_set", {"key": "tele_s", "value": 5}, 6)),
        ("config_set a key not allowed", s("config_set", {"key": "mqtt", "value": {}}, 7)),
        ("dim level out of range", s("dim", {"level": 101}, 8)),
        ("dim without level", s("dim", {"fade_s": 3}, 8)),
        ("dim unknown argument", s("dim", {"level": 3, "colour": "red"}, 8)),
        ("dim until_s with level null", s("dim", {"level": None, "until_s": 5}, 8)),
        ("bad signature", bad_mac),
        ("wrong key", s("dim", {"level": 5}, 22, k=bytes(32))),
        ("replayed counter", first),
        ("older counter", s("dim", {"level": 5}, 2)),
        ("unknown command", s("explode", {}, 23)),
        ("another node's", s("dim", {"level": 5}, 24, n=node + "x")),
        ("identify", s("identify", {"seconds": 1}, 25)),
        (
            "ota without the fleet key",
            s("ota", {"version": "9.9.9", "bundle": BUNDLE, "size": 9}, 26),
        ),
        ("ota bad version", s("ota", {"version": "9.9", "bundle": BUNDLE, "size": 9}, 27)),
    ]
    payloads = [(w, protocol.encode(e)) for w, e in out]
    payloads += [
        ("not JSON", b"not json"),
        ("JSON, not an object", b"[1, 2]"),
        ("a float", json.dumps({**first, "ctr": 30, "args": {"level": 1.5}}).encode()),
        ("a field missing", json.dumps({k: v for k, v in first.items() if k != "mac"}).encode()),
        ("reboot", protocol.encode(s("reboot", {"delay_s": 0}, 31))),
    ]
    return payloads


def _run_stream(broker: Mosquitto, node: str, stream: list[tuple[str, bytes]]) -> list[dict]:
    """Each command, then its ack (one ack per command, in order) -> the acks."""
    topic = f"lanterna/v1/{SITE}/{node}/"
    obs = Observer(broker, topics=(topic + "ack",))
    try:
        acks = []
        for i, (what, payload) in enumerate(stream):
            obs.publish(topic + "cmd", payload)
            msgs = obs.wait(lambda m, i=i: len(m) > i, what=f"the ack of {what}")
            acks.append(json.loads(msgs[i].payload))
        return acks
    finally:
        obs.stop()


def _normal(ack: dict) -> dict:
    a = json.loads(json.dumps(ack))
    r = a.get("result")
    if isinstance(r, dict) and r.get("until") is not None:
        r["until"] = "<instant>"
    return a


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real node's acks for the stream, and its id and key."""
    tmp = tmp_path_factory.mktemp("real")
    broker = Mosquitto(tmp / "broker")
    broker.start()
    try:
        nodes = prepare(tmp / "state", 1, SITE, broker.url)
        creds = json.loads((tmp / "state" / "credentials.json").read_text())
        broker.add_users({n: c["password"] for n, c in creds.items()})
        node = nodes[0].node
        key = bytes.fromhex(creds[node]["key"])
        status = Observer(broker, topics=(f"lanterna/v1/{SITE}/{node}/status",))
        d = District(nodes, warp=1, board="sim-s3")
        d.start()
        try:
            status.wait(lambda m: any(p == b"online" for _, p, _ in m), 60, "the node online")
            acks = _run_stream(broker, node, _stream(key, node))
        finally:
            d.stop()
            status.stop()
        return node, key, acks
    finally:
        broker.stop()


def _protocol_acks(tmp_path, node: str, key: bytes) -> list[dict]:
    broker = Mosquitto(tmp_path / "broker", {P.USER: SIM_PASSWORD})
    broker.start()
    try:
        (tmp_path / "ctr").mkdir()
        pn = ProtoNode(node, SITE, key.hex(), "lanterna/v1", f"{tmp_path}/ctr/{node}.", 60)
        run = P.Running(P.Fleet([pn], "127.0.0.1", broker.port, P.USER, SIM_PASSWORD, 1))
        try:
            assert run.ready.wait(30)
            return _run_stream(broker, node, _stream(key, node))
        finally:
            run.stop()
    finally:
        broker.stop()


def test_a_protocol_node_answers_every_command_as_the_real_node(real, tmp_path):
    node, key, real_acks = real
    got = _protocol_acks(tmp_path, node, key)
    stream = _stream(key, node)
    assert len(got) == len(real_acks) == len(stream)
    for (what, _), r, p in zip(stream, real_acks, got, strict=True):
        assert _normal(p) == _normal(r), what
    # The stream reached every outcome the handler has (a test of the test).
    errors = {a.get("error") for a in real_acks}
    assert errors >= {
        None,
        "malformed",
        "bad_mac",
        "replay",
        "wrong_node",
        "unknown_command",
        "bad_args",
        "failed",
    }


def _reverse_sort(monkeypatch) -> None:
    from lamp.cmd import canon

    # canon's `sorted` is looked up in the module first: keys now sort backwards
    monkeypatch.setattr(canon, "sorted", lambda v: builtins.sorted(v, reverse=True), raising=False)


def _spaced(monkeypatch) -> None:
    from lamp.cmd import handler

    orig = handler._canon
    monkeypatch.setattr(
        handler, "_canon", lambda v, out, depth=0: orig(v, lambda s: out(", " if s == "," else s))
    )


@pytest.mark.parametrize("change", [_reverse_sort, _spaced], ids=["keys-reversed", "spaced"])
def test_a_changed_canonical_form_is_caught(real, tmp_path, monkeypatch, change):
    node, key, real_acks = real
    change(monkeypatch)
    got = _protocol_acks(tmp_path, node, key)
    mismatched = [
        what
        for (what, _), r, p in zip(_stream(key, node), real_acks, got, strict=True)
        if _normal(p) != _normal(r)
    ]
    assert "dim with fade and duration" in mismatched
    assert got[0]["error"] == "bad_mac"

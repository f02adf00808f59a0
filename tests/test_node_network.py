"""A connected virtual node end to end: its CoAP server read by aiocoap and libcoap's
coap-client, a signed schedule larger than one block PUT by both; 10,000 garbage and
mutated datagrams and 10,000 malformed command payloads on its MQTT cmd topic leave it
running, at its lamp level, with no heap growth."""

from __future__ import annotations

import json
import random
import socket
import subprocess

import pytest
from conftest import free_udp_ports
from observer import Msg, Observer

from coapclient import COAP_CLIENT, aiocoap_run
from lanterna.sim.district import District, prepare
from lanterna.wire import protocol

NODE = "greenwich-001"
TOPIC = f"lanterna/v1/greenwich/{NODE}/"


def big_schedule(sid: str) -> dict:
    # ~2.5 KB of JSON: a profile per weekday with many steps, so it needs several blocks
    steps = [
        {"at": f"{h:02d}:{m:02d}", "level": (h * 7 + m) % 101}
        for h in range(18, 24)
        for m in (0, 20, 40)
    ]
    return {
        "version": 1,
        "id": sid,
        "profiles": {f"p{i}": steps for i in range(4)},
        "calendar": [{"profile": "p0"}],
    }


@pytest.fixture
def outbox_count():
    return 64


@pytest.fixture
def node(mosquitto, tmp_path, outbox_count):
    base = free_udp_ports(1) - 1
    nodes = prepare(
        tmp_path / "state", 1, "greenwich", mosquitto.url, coap_base_port=base, tele_s=10
    )
    cfg_path = nodes[0].dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["mqtt"]["outbox_count"] = outbox_count
    cfg_path.write_text(json.dumps(cfg))
    creds = json.loads((tmp_path / "state" / "credentials.json").read_text())
    mosquitto.add_user(NODE, creds[NODE]["password"])
    watch = Observer(mosquitto, [TOPIC + "#"])
    d = District(nodes, warp=6)  # the sim board: the plain ESP32, scaled (docs/boards.md)
    d.start()
    try:
        watch.first(TOPIC + "status", b"online")
        yield nodes[0].coap_port, bytes.fromhex(creds[NODE]["key"]), watch, d, mosquitto
    finally:
        d.stop()
        watch.stop()


def test_coap_reads_and_block_wise_signed_schedules_from_both_clients(node, tmp_path):
    from aiocoap import GET, PUT

    port, key, watch, _, _ = node
    core, state = aiocoap_run(port, (GET, "/.well-known/core", b""), (GET, "/state", b""))
    assert b"</state>" in core.payload and b"</schedule>" in core.payload
    assert json.loads(state.payload)["state"]["fw"]
    out = subprocess.run(
        [COAP_CLIENT, "-B", "5", "-m", "get", f"coap://127.0.0.1:{port}/state"],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    assert json.loads(out[out.index("{") :])["v"] == 1

    first = protocol.encode(
        protocol.sign(key, NODE, "schedule", {"schedule": big_schedule("a")}, 1)
    )
    assert len(first) > 2048  # several 1 KB blocks, many 64-byte ones
    (r,) = aiocoap_run(port, (PUT, "/schedule", first))
    assert r.code.dotted == "2.04", r.payload
    assert json.loads(r.payload)["result"] == {"schedule": "a"}

    second = protocol.encode(
        protocol.sign(key, NODE, "schedule", {"schedule": big_schedule("b")}, 2)
    )
    f = tmp_path / "cmd.json"
    f.write_bytes(second)
    out = subprocess.run(
        [
            COAP_CLIENT,
            "-B",
            "5",
            "-b",
            "64",
            "-m",
            "put",
            "-f",
            str(f),
            f"coap://127.0.0.1:{port}/schedule",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert json.loads(out[out.index("{") :])["ok"] is True, out
    # the same signed command again: a replay, refused with 4.01 and changing nothing
    (again,) = aiocoap_run(port, (PUT, "/schedule", first))
    assert again.code.dotted == "4.01" and json.loads(again.payload)["error"] == "replay"
    (state,) = aiocoap_run(port, (GET, "/state", b""))
    assert json.loads(state.payload)["state"]["schedule"] == "b"
    acks = watch.wait(lambda m: sum(t == TOPIC + "ack" for t, _, _ in m) >= 3, what="3 acks")
    assert acks


def _heap_free(watch, after: int) -> list[int]:
    return [t["heap_free"] for t in watch.json(TOPIC + "tele")[after:]]


def test_garbage_on_coap_and_on_the_cmd_topic_changes_nothing(node):
    from aiocoap import GET

    port, key, watch, district, _ = node
    good = protocol.encode(protocol.sign(key, NODE, "dim", {"level": 60}, 1))
    watch.c.publish(TOPIC + "cmd", good, qos=1)
    watch.wait(
        lambda m: any(t == TOPIC + "state" and b'"level": 60' in p for t, p, _ in m),
        what="level 60",
    )
    rng = random.Random(7)
    get_state = bytes.fromhex("40010001") + b"\xb5state"  # CON GET /state
    put_schedule = bytes.fromhex("40030002") + b"\xb8schedule\xff" + good[:900]
    valid = [get_state, put_schedule]

    def flood(n: int, ctr: int) -> None:
        # n datagrams (random, or valid requests with bytes changed) to the CoAP port and
        # n payloads (random, or the signed dim with bytes changed) to the cmd topic, then
        # a signed marker command whose answer says the node has read them all.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(n):
                if i % 2:
                    d = bytearray(rng.choice(valid))
                    for _ in range(rng.randint(1, 4)):
                        d[rng.randrange(len(d))] = rng.randrange(256)
                    data = bytes(d)
                else:
                    data = rng.randbytes(rng.randint(0, 80))
                s.sendto(data, ("127.0.0.1", port))
        for i in range(n):
            if i % 2:
                d = bytearray(good)
                for _ in range(rng.randint(1, 6)):
                    d[rng.randrange(len(d))] = rng.randrange(32, 127)
                payload = bytes(d)
            else:
                payload = rng.randbytes(rng.randint(0, 120))
            watch.c.publish(TOPIC + "cmd", payload, qos=0)
        marker = protocol.sign(key, NODE, "config_set", {"key": "tele_s", "value": 10}, ctr)
        watch.c.publish(TOPIC + "cmd", protocol.encode(marker), qos=1)
        watch.wait(
            lambda m: any(t == TOPIC + "ack" and marker["id"].encode() in p for t, p, _ in m),
            timeout=600,  # 10,000 messages: a loaded host makes them take minutes
            what="the node still answering after the flood",
        )

    def settled_heap() -> int:
        n = len(watch.json(TOPIC + "tele"))
        watch.wait(lambda m: sum(t == TOPIC + "tele" for t, _, _ in m) >= n + 3, what="tele")
        return min(_heap_free(watch, n))

    flood(300, 2)  # warm-up: bounded caches (CoAP deduplication, outbox) fill once
    before = settled_heap()
    flood(5000, 3)
    (state,) = aiocoap_run(port, (GET, "/state", b""))
    assert json.loads(state.payload)["state"]["level"] == 60
    assert district.alive() == 1
    mid = settled_heap()
    flood(5000, 4)
    after = settled_heap()
    # Each flood is 10,000 messages: a leak of even half a byte each would show as 4 KB,
    # in both floods alike. The collector is conservative: a stale word that happens to
    # point into a dead block keeps it (seen: 14.8 KB kept after one flood when the sim
    # board got two more attributes, nothing lost in the next). So at least one flood
    # must leave the heap where it found it; what varies by a KB or so is what the
    # bounded caches and the outbox hold at the sample.
    assert min(before - mid, mid - after) <= 4096, (before, mid, after)
    assert after >= before - 32768, (before, mid, after)
    assert watch.json(TOPIC + "state")[-1]["level"] == 60  # no state change since the dim


def keeper_of(broker) -> Observer:
    """A persistent session (clean_session=False) on the node's topics: the broker keeps
    its subscription and queues its QoS 1 messages across a restart. The fixture's
    watcher (a clean session) resubscribes only once paho has reconnected: the node may be
    back first and flush its outbox to nobody."""
    return Observer(broker, [TOPIC + "#"], client_id="outage-keeper", clean=False)


def _iso_s(ts: str) -> int:
    import calendar
    import time

    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def _reconnected(msgs: list[Msg], start: int) -> int | None:
    # The index of on_connect's state after a reconnect: it directly follows "online"
    # (the retained copies a new subscriber gets come first, before `start`).
    for i in range(start, len(msgs) - 1):
        if msgs[i][:2] == (TOPIC + "status", b"online") and msgs[i + 1][0] == TOPIC + "state":
            return i + 1
    return None


@pytest.mark.parametrize("outbox_count", [8])
def test_a_broker_outage_is_bridged_by_the_outbox_and_what_did_not_fit_is_counted(node):
    _, _, watch, district, broker = node
    watch.wait(lambda m: sum(t == TOPIC + "tele" for t, _, _ in m) >= 2, what="telemetry")
    keeper = keeper_of(broker)
    try:
        dev = district.bus.node(0)
        start = len(keeper.msgs)
        broker.stop()
        down_at = dev.t  # the node's clock, as its sensor polls on the bus carry it
        # 150 s of node time without a broker: 15 telemetry messages for an outbox of 8.
        district.bus.wait_time(dev, down_at + 150, timeout=60)
        broker.start()

        def back(m) -> bool:
            i = _reconnected(m, start)
            return i is not None and sum(t == TOPIC + "tele" for t, _, _ in m[i:]) >= 3

        # The node reconnects after its backoff, which may be well after the broker is
        # back: what it published meanwhile sat in the outbox too.
        msgs = keeper.wait(back, timeout=90, what="the node back, and telemetry after it")
    finally:
        keeper.stop()
    i = _reconnected(msgs, start)
    assert i is not None
    up_at = _iso_s(json.loads(msgs[i][1])["ts"])  # when on_connect ran
    tele = {}  # ts -> payload, from both observers: the watcher saw before the outage
    for t, p, _ in watch.msgs + msgs:
        if t == TOPIC + "tele":
            d = json.loads(p)
            tele[_iso_s(d["ts"])] = d
    seen = sorted(tele)
    after = [tele[ts]["mqtt_dropped"] for ts in seen if ts > up_at]
    # The outage is the one gap in what arrived: it starts at the last telemetry the
    # broker took (down_at, from the bus, may lag the node's clock by a poll).
    upto = [ts for ts in seen if ts <= up_at]
    gap = max(range(1, len(upto)), key=lambda k: upto[k] - upto[k - 1])
    before, kept = upto[gap - 1], upto[gap:]
    assert before <= down_at + 10 < kept[0], (down_at, before, kept)
    # The newest of the outage (up to the reconnect) survive in the outbox, in order and
    # without a gap (8 slots, shared with the "online" and state of on_connect).
    assert 1 <= len(kept) <= 8, kept
    assert kept[-1] > up_at - 20, (kept, up_at)
    assert all(b - a == 10 for a, b in zip(kept, kept[1:], strict=False)), kept
    # The oldest were dropped and counted: exactly the telemetry missing between the last
    # before the outage and the first kept, plus what on_connect pushed out (up to 2).
    missing = (kept[0] - before) // 10 - 1
    assert missing >= 15 - 8, (before, kept)
    assert missing <= after[0] <= missing + 2, (missing, after)
    # Once back, nothing more is dropped.
    assert after == [after[0]] * len(after), after
    assert district.alive() == 1

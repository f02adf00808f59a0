"""The ingest session's queue on a real mosquitto, sized as `lanterna broker config` sizes
it (lanterna.broker.config.queue_plan): while serve is away the broker keeps exactly the
configured number of messages for its session, all of them stored once serve is back;
beyond it the broker drops the newest, and serve reports exactly how many."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from lanterna.broker import config as bc
from lanterna.broker.mosquitto import Mosquitto
from lanterna.store.db import Store

LANTERNA = str(Path(sys.executable).with_name("lanterna"))
WAIT_S = 60.0
# A fleet of 5 nodes at one message a minute, serve away for 50 minutes: 300 messages.
# Small on purpose: the field's queue is the same formula with the fleet's numbers.
NODES, TELE_S, OUTAGE_S = 5, 60, 3000


def limit() -> int:
    # the formula without its floor (the floor is there for tiny real fleets)
    return int(NODES * bc.HEADROOM * OUTAGE_S / TELE_S)


def tele(k: int) -> bytes:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1795600000 + k * 60))
    return json.dumps({"v": 1, "ts": ts, "level": 50, "energy": {"kwh": k / 1e3}}).encode()


def publish(broker: Mosquitto, n: int, start: int = 0) -> None:
    """n telemetry messages at QoS 1, each PUBACKed by the broker, spread over NODES."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    c.username_pw_set("controller", broker.users["controller"])
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        infos = [
            c.publish(f"lanterna/v1/s/node-{k % NODES}/tele", tele(k), qos=1)
            for k in range(start, start + n)
        ]
        for i in infos:
            i.wait_for_publish(WAIT_S)
        assert all(i.is_published() for i in infos)
    finally:
        c.loop_stop()
        c.disconnect()


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker", max_queued=limit(), sys_interval=1)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def serve_env(tmp_path: Path, broker: Mosquitto) -> dict[str, str]:
    return dict(
        os.environ,
        LANTERNA_HOME=str(tmp_path),
        LANTERNA_BROKER=broker.url,
        LANTERNA_BROKER_PASSWORD=broker.users["controller"],
    )


def stored(tmp_path: Path) -> int:
    with Store(tmp_path / "lanterna.db") as s:
        return s.telemetry_count()


def wait_stored(tmp_path: Path, n: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while stored(tmp_path) < n and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the store for the count, bounded by the deadline
    assert stored(tmp_path) == n


def final(proc) -> dict:
    """SIGTERM, then the --json counts serve printed last."""
    assert proc.stop(signal.SIGTERM) == 0, "\n".join(proc.lines)
    start = max(i for i, line in enumerate(proc.lines) if line == "{")
    return json.loads("\n".join(proc.lines[start:]))


def test_the_queue_holds_what_it_was_sized_for_and_all_is_stored(tmp_path, broker, spawn):
    assert bc.queue_plan(NODES, TELE_S, OUTAGE_S).max_queued == bc.QUEUE_FLOOR  # floor
    env = serve_env(tmp_path, broker)
    first = spawn([LANTERNA, "serve", "--json"], env=env)
    first.wait_for("serving ")  # subscribed: the broker now keeps its session
    assert final(first)["stored"] == 0
    publish(broker, limit())  # serve is away: all of it waits in the broker
    back = spawn([LANTERNA, "serve", "--json"], env=env)
    back.wait_for("serving ")
    wait_stored(tmp_path, limit())
    stats = final(back)
    assert stats["stored"] == limit()
    assert not stats["broker_dropped"]
    assert not any("the broker dropped" in line for line in back.lines)


def test_beyond_the_queue_the_newest_are_dropped_and_counted(tmp_path, broker, spawn):
    env = serve_env(tmp_path, broker)
    first = spawn([LANTERNA, "serve", "--json"], env=env)
    first.wait_for("serving ")
    final(first)
    extra = 37
    publish(broker, limit() + extra)
    back = spawn([LANTERNA, "serve", "--json"], env=env)
    back.wait_for("serving ")
    wait_stored(tmp_path, limit())
    # the broker's count reaches serve within its sys_interval (1 s here)
    line = back.wait_for("the broker dropped")
    assert f"dropped {extra} more messages ({extra} since it started)" in line
    stats = final(back)
    assert stats["broker_dropped"] == extra and stats["stored"] == limit()
    # the oldest were kept: the last `extra` telemetry messages are the ones missing
    with Store(tmp_path / "lanterna.db") as s:
        newest = s.db.execute("SELECT MAX(ts) FROM telemetry").fetchone()[0]
    assert newest == 1795600000 + (limit() - 1) * 60


def test_broker_config_sizes_the_queue_from_the_fleet_and_says_what_it_costs(tmp_path):
    o = bc.Options(out=tmp_path, fleet=72000, outage_s=7200)
    text = bc.conf_text(o, tmp_path, nodes=3)
    q = bc.queue_plan(72000, 60, 7200)
    assert q.max_queued == 72000 * 120 * 12 // 10  # nodes x messages in 2 h x headroom
    assert f"\nmax_queued_messages {q.max_queued}\n" in text
    assert f"{q.memory_bytes / 2**20:.0f} MiB" in text and "per extra hour" in text
    # from the store's nodes when no fleet is given; never below the floor
    assert bc.plan_for(bc.Options(out=tmp_path), 3).max_queued == bc.QUEUE_FLOOR
    assert bc.plan_for(bc.Options(out=tmp_path, tele_s=10), 2000).max_queued == 864000
    assert q.dropped(7200) == 0 and q.dropped(7200 + 3600) == int(3600 * q.per_s)

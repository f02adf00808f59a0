"""`lanterna serve --workers 2` on a real mosquitto: the workers share the stream through
the MQTT 5 shared subscription, and a worker killed with SIGKILL mid-stream loses
nothing: the supervisor restarts it under its own session, the broker hands it again what
it held unacknowledged (and what was routed to its session meanwhile), and the store
holds every published message exactly once."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from lanterna.store.db import Store

LANTERNA = str(Path(sys.executable).with_name("lanterna"))
WAIT_S = 60.0
NODES, N = 40, 4000


def tele(k: int) -> bytes:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1795600000 + (k // NODES) * 60))
    return json.dumps({"v": 1, "ts": ts, "level": k % 101, "energy": {"kwh": k}}).encode()


def published() -> set[tuple[str, float]]:
    return {(f"node-{k % NODES:02d}", 1795600000.0 + (k // NODES) * 60) for k in range(N)}


def publish_range(port: int, password: str, ks: range) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher-2")
    c.username_pw_set("controller", password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = [c.publish(f"lanterna/v1/s/node-{k % NODES:02d}/tele", tele(k), qos=1) for k in ks]
        for i in infos:
            i.wait_for_publish(WAIT_S)
        assert all(i.is_published() for i in infos)
    finally:
        c.loop_stop()
        c.disconnect()


def publish(port: int, password: str, half_done: threading.Event, go_on: threading.Event):
    """The first half of the stream, then (once the test has killed a worker) the rest;
    every message PUBACKed by the broker."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    c.username_pw_set("controller", password)
    c.max_inflight_messages_set(500)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = []
        for k in range(N):
            if k == N // 2:
                half_done.set()
                assert go_on.wait(WAIT_S)
            infos.append(c.publish(f"lanterna/v1/s/node-{k % NODES:02d}/tele", tele(k), qos=1))
        for i in infos:
            i.wait_for_publish(WAIT_S)
        assert all(i.is_published() for i in infos)
    finally:
        c.loop_stop()
        c.disconnect()


def count(db: Path) -> int:
    with Store(db) as s:
        return s.telemetry_count()


def wait_count(db: Path, n: int) -> int:
    deadline = time.monotonic() + WAIT_S
    while (got := count(db)) < n and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the store for the count, bounded by the deadline
    return got


def test_a_worker_killed_mid_stream_loses_nothing_and_nothing_is_stored_twice(
    tmp_path, mosquitto, spawn
):
    env = dict(
        os.environ,
        LANTERNA_HOME=str(tmp_path),
        LANTERNA_BROKER=mosquitto.url,
        LANTERNA_BROKER_PASSWORD=mosquitto.users["controller"],
    )
    db = tmp_path / "lanterna.db"
    serve = spawn([LANTERNA, "serve", "--workers", "2", "--batch", "50", "--json"], env=env)
    line = serve.wait_for("serving ")
    pids = [int(p) for p in line.split("(pids ")[1].rstrip(")").split(", ")]
    assert len(pids) == 2

    half, go_on = threading.Event(), threading.Event()
    pub = threading.Thread(
        target=publish, args=(mosquitto.port, mosquitto.users["controller"], half, go_on)
    )
    pub.start()
    try:
        assert half.wait(WAIT_S)
        at_kill = wait_count(db, 300)
        os.kill(pids[1], signal.SIGKILL)  # worker 1, whatever it holds unacknowledged
        assert 300 <= at_kill < N  # mid-stream: the second half is not even published
        serve.wait_for("worker 1 exited (-9): restarting")
        go_on.set()
        pub.join(WAIT_S)
        assert not pub.is_alive()
        assert wait_count(db, N) == N
    finally:
        go_on.set()
        pub.join(WAIT_S)
    assert serve.stop(signal.SIGTERM) == 0, "\n".join(serve.lines)
    start = max(i for i, x in enumerate(serve.lines) if x == "{")
    stats = json.loads("\n".join(serve.lines[start:]))

    with Store(db) as s:
        rows = s.db.execute("SELECT node, ts FROM telemetry").fetchall()
        levels = dict(
            ((r[0], r[1]), r[2]) for r in s.db.execute("SELECT node, ts, level FROM telemetry")
        )
    got = [(r[0], float(r[1])) for r in rows]
    assert len(got) == len(set(got)) == N  # once each
    assert set(got) == published()  # and every one of them
    # each row is the message published for it, not a stray copy of another
    assert all(
        levels[(f"node-{k % NODES:02d}", 1795600000 + (k // NODES) * 60)] == k % 101
        for k in range(N)
    )
    w = {x["worker"]: x for x in stats["workers"]}
    assert w[1]["restarts"] == 1 and w[1]["exits"][0] == -signal.SIGKILL
    # both shared the load: each stored part of the stream after the kill as well
    assert w[0]["stored"] > 0 and w[1]["stored"] > 0


def final_json(proc) -> dict:
    start = max(i for i, x in enumerate(proc.lines) if x == "{")
    return json.loads("\n".join(proc.lines[start:]))


def test_a_retired_worker_is_drained_and_leaves_the_group(tmp_path, mosquitto, spawn):
    env = dict(
        os.environ,
        LANTERNA_HOME=str(tmp_path),
        LANTERNA_BROKER=mosquitto.url,
        LANTERNA_BROKER_PASSWORD=mosquitto.users["controller"],
    )
    db = tmp_path / "lanterna.db"
    pw = mosquitto.users["controller"]
    two = spawn([LANTERNA, "serve", "--workers", "2", "--json"], env=env)
    two.wait_for("serving ")
    assert two.stop(signal.SIGTERM) == 0
    publish_range(mosquitto.port, pw, range(400))  # both sessions hold their share

    # down to one worker: worker 1 is drained, and its session ended
    drain = spawn([LANTERNA, "serve", "--drain", "--first-worker", "1", "--json"], env=env)
    drain.wait_for("drained and its session ended")
    assert drain.p.wait(WAIT_S) == 0
    held = final_json(drain)["stored"]
    assert 0 < held < 400 and count(db) == held

    one = spawn([LANTERNA, "serve", "--share", "--json"], env=env)
    one.wait_for("serving ")
    # worker 0 gets its own share back and, with worker 1 out of the group, all that follows
    publish_range(mosquitto.port, pw, range(400, 800))
    assert wait_count(db, 800) == 800
    assert one.stop(signal.SIGTERM) == 0
    with Store(db) as s:
        assert s.db.execute("SELECT COUNT(DISTINCT node || ts) FROM telemetry").fetchone()[0] == 800

"""`lanterna serve` against a real mosquitto: SIGTERM commits what was received, and what
the broker still held arrives with the next serve, once (no loss, no duplicate)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lanterna.store.db import Store

LANTERNA = str(Path(sys.executable).with_name("lanterna"))
N = 3000


def tele(k: int) -> bytes:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1795600000 + (k // 30) * 60))
    return json.dumps({"v": 1, "ts": ts, "level": 50, "energy": {"kwh": k / 1e3}}).encode()


def publish_all(port: int, password: str) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    c.username_pw_set("controller", password)
    c.max_inflight_messages_set(500)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(f"lanterna/v1/s/node-{k % 30:02d}/tele", tele(k), qos=1) for k in range(N)]
    for i in infos:
        i.wait_for_publish(30)
    assert all(i.is_published() for i in infos)
    c.loop_stop()
    c.disconnect()


def serve(env: dict) -> subprocess.Popen:
    p = subprocess.Popen(
        [LANTERNA, "serve", "--json", "--batch", "50"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stderr is not None
    line = p.stderr.readline()  # "serving ..." once subscribed
    assert line.startswith("serving "), line + p.stderr.read()
    return p


def test_sigterm_flushes_and_the_rest_arrives_once_with_the_next_serve(tmp_path, mosquitto):
    env = dict(
        os.environ,
        LANTERNA_HOME=str(tmp_path),
        LANTERNA_BROKER=mosquitto.url,
        LANTERNA_BROKER_PASSWORD=mosquitto.users["controller"],
    )
    first = serve(env)
    pub = threading.Thread(target=publish_all, args=(mosquitto.port, mosquitto.users["controller"]))
    try:
        pub.start()
        # Stop serve in the middle of the stream: the broker keeps the rest for its session.
        deadline = time.monotonic() + 60
        with Store(tmp_path / "lanterna.db") as s:
            while s.telemetry_count() < 300 and time.monotonic() < deadline:
                time.sleep(0.01)  # polling the store for the count, bounded
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
        pub.join(60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    stats = json.loads(out)
    with Store(tmp_path / "lanterna.db") as s:
        after_first = s.telemetry_count()
    # What serve said it stored is in the store: committed before it exited.
    assert after_first == stats["stored"] > 0
    assert after_first < N, "serve was stopped only after the whole stream: nothing tested"

    second = serve(env)
    try:
        deadline = time.monotonic() + 60
        with Store(tmp_path / "lanterna.db") as s:
            while s.telemetry_count() < N and time.monotonic() < deadline:
                time.sleep(0.1)  # polling the store for the count, bounded
            assert s.telemetry_count() == N
            per_node = s.db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT ts) FROM telemetry GROUP BY node"
            ).fetchall()
        assert len(per_node) == 30 and all(tuple(r) == (N // 30, N // 30) for r in per_node)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)

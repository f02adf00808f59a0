"""Ingest rate of `lanterna serve` (lanterna.fleet.ingest) against a real mosquitto.

A publisher sends N telemetry messages (the shape a node publishes, from 100 node ids)
at QoS 1 as fast as the broker takes them, while the ingest commits them into a fresh
store. Baseline, measured in the same run against the same broker: a bare paho
subscriber with the same session settings that only counts (the ceiling the broker and
paho set). Printed, one JSON object: messages per second into the store, the baseline's
rate, and their ratio.
Run: .venv/bin/python bench/bench_ingest.py [N]
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

NODES = 100


def tele(i: int, n: int) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1795600000 + n * 60)),
            "level": 70,
            "source": "schedule",
            "energy": {
                "kwh": n / 1000,
                "power_w": 31.5,
                "switch_on": 1,
                "burn_h": 1.0,
                "source": "model",
            },
            "faults": [],
            "sensors": {"bme280": {"fault": None, "temp_x10": [80, 85, 90, 6]}},
            "units": {"temp_x10": "degC"},
            "evse": None,
            "heap_free": 30000,
            "uptime_s": n * 60,
            "mqtt_dropped": 0,
        }
    ).encode()


def publish(url_port: int, password: str, n: int) -> float:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    c.username_pw_set("controller", password)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", url_port)
    c.loop_start()
    t0 = time.monotonic()
    infos = []
    for k in range(n):
        node = f"bench-{k % NODES:03d}"
        infos.append(c.publish(f"lanterna/v1/bench/{node}/tele", tele(k, k // NODES), qos=1))
    for i in infos:
        i.wait_for_publish(60)
    dt = time.monotonic() - t0
    c.loop_stop()
    c.disconnect()
    return dt


def baseline(port: int, password: str, n: int) -> float:
    import paho.mqtt.client as mqtt

    got = 0
    done = threading.Event()
    t: list[float] = []

    def on_message(_c, _u, m) -> None:  # type: ignore[no-untyped-def]
        nonlocal got
        if not t:
            t.append(time.monotonic())
        got += 1
        if got >= n:
            t.append(time.monotonic())
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-base", clean_session=False)
    c.username_pw_set("controller", password)
    c.on_message = on_message
    subscribed = threading.Event()
    c.on_subscribe = lambda *_a: subscribed.set()
    c.connect("127.0.0.1", port)
    c.subscribe("lanterna/v1/+/+/tele", qos=1)
    c.loop_start()
    subscribed.wait(10)
    t_pub = time.monotonic()
    publish(port, password, n)
    done.wait(120)
    c.loop_stop()
    c.disconnect()
    return n / (t[-1] - t_pub) if len(t) == 2 else 0.0


def main() -> None:
    from lanterna.broker.mosquitto import Mosquitto
    from lanterna.context import Broker
    from lanterna.fleet.ingest import Ingest
    from lanterna.store.db import Store

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "broker")
        broker.start()
        try:
            pw = broker.users["controller"]
            base_rate = baseline(broker.port, pw, n)
            db = tmp / "bench.db"
            Store(db).close()
            ing = Ingest(str(db), Broker("127.0.0.1", broker.port, "controller", pw))
            ing.start()
            t0 = time.monotonic()
            publish(broker.port, pw, n)
            with Store(db) as s:
                deadline = time.monotonic() + 300
                while s.telemetry_count() < n and time.monotonic() < deadline:
                    time.sleep(0.05)  # polling the store for the count, bounded
                stored = s.telemetry_count()
            dt = time.monotonic() - t0
            ing.stop()
        finally:
            broker.stop()
    rate = stored / dt
    print(
        json.dumps(
            {
                "bench": "ingest",
                "messages": n,
                "stored": stored,
                "seconds": round(dt, 2),
                "rate_per_s": round(rate, 1),
                "baseline_subscriber_rate_per_s": round(base_rate, 1),
                "ratio_to_baseline": round(rate / base_rate, 3) if base_rate else None,
                "batches": ing.stats.batches,
                "mean_batch": round(stored / max(ing.stats.batches, 1), 1),
            }
        )
    )


if __name__ == "__main__":
    main()

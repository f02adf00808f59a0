"""An ack-only responder for command fan-out (tests/test_commander_scale.py,
bench/bench_fanout.py): one paho client, in its own process, subscribed to every node's
``cmd`` topic, answering each command with the ack shape of the wire contract
(docs/commands.md, "The ack": ``{"v", "id", "node", "ok": true, "result": {}}``). It
verifies nothing: it stands in for the fleet's answers, not for a node.

Faults on demand, per node by crc32(node) so a test can compute the same set:
``--drop-first K``: nodes with crc32 % K == 0 ignore the first delivery of each command
id (the retry proves itself); ``--silent K``: nodes with crc32 % K == 1 never answer.

    python tests/ackresponder.py --port P --password S [--drop-first K] [--silent K]
                                 [--share GROUP --id ID]

Prints ``ready`` once subscribed, and on SIGTERM its counts as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import zlib


def dropped_first(node: str, k: int) -> bool:
    return k > 0 and zlib.crc32(node.encode()) % k == 0


def silent(node: str, k: int) -> bool:
    return k > 1 and zlib.crc32(node.encode()) % k == 1


def main() -> None:
    import paho.mqtt.client as mqtt

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="controller")
    ap.add_argument("--password", required=True)
    ap.add_argument("--prefix", default="lanterna/v1")
    ap.add_argument("--drop-first", type=int, default=0)
    ap.add_argument("--silent", type=int, default=0)
    # several responders share the commands (an MQTT 5 shared subscription): a bench's
    # fleet must outrun the controller it answers
    ap.add_argument("--share", help="shared subscription group")
    ap.add_argument("--id", default="ack-responder")
    a = ap.parse_args()
    counts = {"received": 0, "acked": 0, "dropped": 0, "silent": 0}
    seen: set[str] = set()
    ready = threading.Event()
    base = len(a.prefix.split("/"))

    def on_connect(c, _u, _f, rc, _p) -> None:
        share = f"$share/{a.share}/" if a.share else ""
        c.subscribe(f"{share}{a.prefix}/+/+/cmd", qos=1)

    def on_message(c, _u, m) -> None:
        counts["received"] += 1
        env = json.loads(m.payload)
        node, i = env["node"], env["id"]
        if silent(node, a.silent):
            counts["silent"] += 1
            return
        if dropped_first(node, a.drop_first) and i not in seen:
            seen.add(i)
            counts["dropped"] += 1
            return
        site = m.topic.split("/")[base]
        ack = {"v": 1, "id": i, "node": node, "ok": True, "result": {}}
        c.publish(f"{a.prefix}/{site}/{node}/ack", json.dumps(ack), qos=1)
        counts["acked"] += 1

    proto = mqtt.MQTTv5 if a.share else mqtt.MQTTv311
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.id, protocol=proto)
    c.username_pw_set(a.user, a.password)
    c.max_inflight_messages_set(1000)
    c.on_connect, c.on_message = on_connect, on_message
    c.on_subscribe = lambda *_a: ready.set()
    c.connect("127.0.0.1", a.port)
    c.loop_start()
    if not ready.wait(30):
        sys.exit("ack responder: not subscribed")
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    c.disconnect()
    c.loop_stop()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()

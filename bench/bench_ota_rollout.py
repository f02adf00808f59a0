"""Time to update one node and twenty: a real bundle rolled out to virtual lamp posts
(the real firmware in MicroPython, booted from their slots) through a real mosquitto.

Measured in one run: building and signing the bundle; the baseline, a CPython client
pulling the same bundle through the same chunk server, one chunk per round trip as a node
does; a rollout to one node (offer, download, install, reset, trial boot, confirmation);
then a rollout of the next version to all twenty at once. The nodes confirm a trial after
one second of health (ota_health_s) and the rollouts have no health window, so the times
are the update's own. Printed, one JSON object.
Run: .venv/bin/python bench/bench_ota_rollout.py [--nodes 20] [--chunk 1024]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path


def pull(server, broker, bundle: bytes, bid: str, chunk: int) -> float:
    """Seconds for a CPython client to fetch `bundle` chunk by chunk, as a node does."""
    import paho.mqtt.client as mqtt

    got = threading.Event()
    box: list[bytes] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.username_pw_set("controller", broker.users["controller"])
    c.on_message = lambda _c, _u, m: (box.append(m.payload), got.set())
    c.connect("127.0.0.1", broker.port)
    c.subscribe("lanterna/v1/bench/baseline/ota/data", qos=1)
    c.loop_start()
    time.sleep(0.5)  # the subscription settles before the clock starts (a bench, not a test)
    t0 = time.perf_counter()
    off = 0
    while off < len(bundle):
        got.clear()
        req = {"v": 1, "bundle": bid, "offset": off, "n": chunk}
        c.publish("lanterna/v1/bench/baseline/ota/req", json.dumps(req), qos=1)
        if not got.wait(10):
            raise SystemExit("baseline: no chunk in 10 s")
        off += len(box.pop()) - 4
    dt = time.perf_counter() - t0
    c.loop_stop()
    c.disconnect()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=1024)
    a = ap.parse_args()
    from lanterna.broker.mosquitto import Mosquitto
    from lanterna.context import Broker
    from lanterna.ota import bundle as ob
    from lanterna.ota import keys as ota_keys
    from lanterna.ota import rollout as ro
    from lanterna.ota.server import ChunkServer, bundle_id
    from lanterna.paths import firmware_dir
    from lanterna.sim.district import District, prepare, register
    from lanterna.store.db import Store

    out: dict = {"nodes": a.nodes, "chunk": a.chunk}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        broker = Mosquitto(tmp / "broker")
        home = tmp / "home"
        pub = ota_keys.keygen(home)
        key = ota_keys.load_private(home / ota_keys.PRIVATE_NAME)
        nodes = prepare(tmp / "state", a.nodes, "greenwich", broker.url, ota_key=pub.as_json()["n"])
        creds = json.loads((tmp / "state" / "credentials.json").read_text())
        broker.add_users({n.node: creds[n.node]["password"] for n in nodes})
        broker.start()
        for n in nodes:
            cfg = json.loads((n.dir / "config.json").read_text())
            cfg["ota_health_s"] = 1
            (n.dir / "config.json").write_text(json.dumps(cfg))
        store = Store(home / "lanterna.db")
        register(store, tmp / "state", nodes, "greenwich")
        ctl = Broker("127.0.0.1", broker.port, "controller", broker.users["controller"])
        d = District(nodes, warp=60, board="sim-s3")
        stop = threading.Event()

        def supervise() -> None:  # as `lanterna sim` does: a node that reset is restarted
            while not stop.wait(0.2):
                d.supervise()

        sup = threading.Thread(target=supervise)
        try:
            d.start()
            sup.start()
            time.sleep(3)  # the nodes connect (a bench: their first seconds are not measured)
            bundles = {}
            for v in ("0.2.0", "0.3.0"):
                t0 = time.perf_counter()
                p = tmp / f"{v}.ota"
                ob.build(firmware_dir(), p, v, key)
                out.setdefault("build_s", round(time.perf_counter() - t0, 2))
                bundles[v] = p.read_bytes()
            out["bundle_bytes"] = len(bundles["0.2.0"])
            server = ChunkServer(ctl)
            bid = server.add(bundles["0.2.0"])
            server.start()
            out["baseline_pull_s"] = round(pull(server, broker, bundles["0.2.0"], bid, a.chunk), 2)
            server.stop()

            def rollout(version: str, ids: list[str]) -> float:
                plan = ro.Plan(health_window=0, timeout=300, chunk=a.chunk)
                data = bundles[version]
                rid = ro.Rollouts(store).create(
                    f"{version}.ota",
                    bundle_id(data),
                    version,
                    len(data),
                    {},
                    plan,
                    ro.assign_waves(ids, plan),
                )
                t0 = time.perf_counter()
                state = ro.Orchestrator(store, ctl, rid, data).run()
                dt = time.perf_counter() - t0
                states = ro.summary(ro.Rollouts(store).nodes(rid))
                if state != "done" or states != {"done": len(ids)}:
                    raise SystemExit(f"rollout {version}: {state} {states}")
                return dt

            out["one_node_s"] = round(rollout("0.2.0", [nodes[0].node]), 2)
            out["all_nodes_s"] = round(rollout("0.3.0", [n.node for n in nodes]), 2)
            out["ratio_one_node_to_baseline"] = round(out["one_node_s"] / out["baseline_pull_s"], 1)
        finally:
            stop.set()
            d.stop()
            store.close()
            broker.stop()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

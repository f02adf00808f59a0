"""Time to update one node and twenty: a real bundle rolled out to virtual lamp posts
(the real firmware in MicroPython, booted from their slots) through a real mosquitto,
and where a node's download time goes.

Measured in one run:
- building and signing the bundle;
- the baseline: a CPython client pulling the same bundle through the same chunk server,
  one chunk per round trip as a node does, with TCP_NODELAY on its socket as the node has
  (lamp.net.aio), and once without it (what this bench measured before: every round trip
  then waits out Nagle and the broker's delayed ACK, ~40 ms);
- rollouts to one node: the chunk server without TCP_NODELAY (as it was), with it, and with
  a larger chunk (`--big-chunk`); then the next version to all the nodes at once.
  A tap (one more subscriber of ota/req and ota/data) times every chunk: the server's
  share (request seen -> chunk seen) and the node's (chunk seen -> its next request:
  delivery, parsing, hashing, the flash write);
- the node's own work per chunk, without the network: bench/ota_feed_mp.py feeds the bundle
  to lamp.ota.install in the real MicroPython (hashing, the flash write, the signature
  check at the end) and bisects the least heap that pull takes, per chunk size.
The nodes confirm a trial after one second of health (ota_health_s) and the rollouts have
no health window, so the times are the update's own. Printed, one JSON object.
Run: .venv/bin/python bench/bench_ota_rollout.py [--nodes 20] [--chunk 1024] [--big-chunk 4096]
     [--board sim-s3|sim]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def nodelay(c) -> None:
    c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def pull(broker, bundle: bytes, bid: str, chunk: int, no_delay: bool) -> float:
    """Seconds for a CPython client to fetch `bundle` chunk by chunk, as a node does."""
    import paho.mqtt.client as mqtt

    got = threading.Event()
    box: list[bytes] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.username_pw_set("controller", broker.users["controller"])
    c.on_message = lambda _c, _u, m: (box.append(m.payload), got.set())
    c.connect("127.0.0.1", broker.port)
    if no_delay:
        nodelay(c)
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


class Tap:
    """Every ota/req and ota/data on the broker, timed where it is seen (TCP_NODELAY)."""

    def __init__(self, broker) -> None:
        import paho.mqtt.client as mqtt

        self.seen: list[tuple[float, str, str, int]] = []  # (t, leaf, node, offset)
        self.steps: list[tuple[float, str, str, str]] = []  # (t, node, leaf, what)
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.username_pw_set("controller", broker.users["controller"])
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", broker.port)
        nodelay(self.c)
        self.c.subscribe(
            [
                ("lanterna/v1/+/+/ota/req", 0),
                ("lanterna/v1/+/+/ota/data", 0),
                ("lanterna/v1/+/+/cmd", 0),
                ("lanterna/v1/+/+/ack", 0),
                ("lanterna/v1/+/+/event", 0),
                ("lanterna/v1/+/+/status", 0),
            ]
        )
        self.c.loop_start()

    def _on(self, _c, _u, m) -> None:
        t = time.perf_counter()
        parts = m.topic.split("/")
        leaf = parts[-1]
        if leaf == "req":
            off = json.loads(m.payload)["offset"]
        elif leaf == "data":
            off = int.from_bytes(m.payload[:4], "big")
        else:  # the rollout's steps: the offer, its ack, the node's events, LWT/online
            self.steps.append((t, parts[3], leaf, step(leaf, m.payload)))
            return
        self.seen.append((t, leaf, parts[3], off))

    def take(self) -> tuple[list[tuple[float, str, str, int]], list[tuple[float, str, str, str]]]:
        got, self.seen = self.seen, []
        steps, self.steps = self.steps, []
        return got, steps

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def step(leaf: str, payload: bytes) -> str:
    if leaf == "status":
        return payload.decode()
    try:
        p = json.loads(payload)
    except ValueError:
        return "?"
    if leaf == "cmd":
        return str(p.get("cmd"))
    if leaf == "ack":
        return "ack " + str(p.get("ok", p.get("result", "")))
    ev = str(p.get("event", p.get("type", "?")))
    body = p.get("data", p)
    if isinstance(body, dict) and "state" in body:
        return f"{ev} state={body.get('state')} result={body.get('result')}"
    return ev


def timeline(t0: float, steps: list[tuple[float, str, str, str]], node: str) -> list[list]:
    """The first node's rollout, step by step: [seconds since the offer was started, what]."""
    return [[round(t - t0, 3), f"{leaf}: {what}"] for t, n, leaf, what in steps if n == node]


def as_was(c):
    """c.disconnect as the rollout's end called it before: after loop_stop(), which waits
    out paho's select first."""
    real = c.disconnect

    def disconnect(*a, **k):
        c.loop_stop()
        return real(*a, **k)

    return disconnect


def chunks(seen: list[tuple[float, str, str, int]]) -> dict:
    """Per node: the pull's time and its split between the server and the node."""
    by: dict[str, dict[str, dict[int, float]]] = {}
    for t, leaf, node, off in seen:
        by.setdefault(node, {"req": {}, "data": {}})[leaf].setdefault(off, t)
    pulls, server, node_ms, n = [], [], [], 0
    for d in by.values():
        offs = sorted(d["req"])
        if not offs or offs[-1] not in d["data"]:
            continue
        pulls.append(d["data"][offs[-1]] - d["req"][offs[0]])
        for a, b in zip(offs, offs[1:], strict=False):
            if a in d["data"]:
                server.append(d["data"][a] - d["req"][a])
                node_ms.append(d["req"][b] - d["data"][a])
        n = max(n, len(offs))
    med = statistics.median
    return {
        "chunks": n,
        "pull_s": round(med(pulls), 3) if pulls else None,
        "server_ms_median": round(med(server) * 1e3, 2) if server else None,
        "node_ms_median": round(med(node_ms) * 1e3, 2) if node_ms else None,
        "server_s_total": round(sum(server) / max(len(pulls), 1), 3),
        "node_s_total": round(sum(node_ms) / max(len(pulls), 1), 3),
    }


def feed_bench(bundle: Path, key_n: str, chunks_: list[int]) -> dict:
    """bench/ota_feed_mp.py in the real MicroPython: the node's per-chunk work, and the
    least heap of the pull per chunk size."""
    import subprocess

    from lanterna.paths import firmware_dir
    from lanterna.sim.district import tool

    mp = tool("micropython")
    here = Path(__file__).resolve().parent
    out: dict = {}

    def run(chunk: int, heap: int, timing: bool) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as root:
            env = dict(os.environ, MICROPYPATH=str(firmware_dir()))
            return subprocess.run(
                [
                    str(mp),
                    "-X",
                    f"heapsize={heap}",
                    str(here / "ota_feed_mp.py"),
                    root + "/",
                    str(bundle),
                    str(keyfile),
                    str(chunk),
                    "1" if timing else "0",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )

    keyfile = bundle.with_suffix(".key")
    keyfile.write_text(key_n)
    for chunk in chunks_:
        p = run(chunk, 2 * 1024 * 1024, True)
        if p.returncode or "FEED-OK" not in p.stdout:
            raise SystemExit(f"ota_feed_mp: {p.stdout}{p.stderr}")
        row = json.loads(p.stdout.split("FEED-OK ", 1)[1])
        lo, hi = 8 * 1024, 512 * 1024  # the least heap the pull completes in: bisected
        while hi - lo > 1024:
            mid = (lo + hi) // 2
            ok = "FEED-OK" in run(chunk, mid, False).stdout
            lo, hi = (lo, mid) if ok else (mid, hi)
        row["least_heap_bytes"] = hi
        out[str(chunk)] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--big-chunk", type=int, default=4096, help="the candidate chunk size")
    ap.add_argument("--board", default="sim-s3", help="sim: a plain ESP32's heap (scaled)")
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

    out: dict = {
        "nodes": a.nodes,
        "board": a.board,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
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
        d = District(nodes, warp=60, board=a.board)
        stop = threading.Event()

        def supervise() -> None:  # as `lanterna sim` does: a node that reset is restarted
            while not stop.wait(0.2):
                d.supervise()

        sup = threading.Thread(target=supervise)
        try:
            d.start()
            sup.start()
            time.sleep(3)  # the nodes connect (a bench: their first seconds are not measured)
            versions = ["0.2.0", "0.3.0", "0.4.0", "0.5.0"]
            bundles = {}
            for v in versions:
                t0 = time.perf_counter()
                p = tmp / f"{v}.ota"
                ob.build(firmware_dir(), p, v, key)
                out.setdefault("build_s", round(time.perf_counter() - t0, 2))
                bundles[v] = p.read_bytes()
            out["bundle_bytes"] = len(bundles["0.2.0"])
            server = ChunkServer(ctl)
            bid = server.add(bundles["0.2.0"])
            server.start()
            for nd in (False, True):  # the same run: the old baseline and the fixed one
                k = "baseline_pull_s" + ("" if nd else "_without_nodelay")
                out[k] = round(pull(broker, bundles["0.2.0"], bid, a.chunk, nd), 3)
            server.stop()
            tap = Tap(broker)

            def rollout(version: str, ids: list[str], chunk: int, nodelay: bool) -> dict:
                # nodelay False: the controller as it was (no TCP_NODELAY on the chunk
                # server, loop_stop() before disconnect() at the rollout's end)
                ChunkServer.nodelay = nodelay
                plan = ro.Plan(health_window=0, timeout=300, chunk=chunk)
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
                tap.take()
                t0 = time.perf_counter()
                o = ro.Orchestrator(store, ctl, rid, data)
                if not nodelay:
                    for c in (o._watch, o.server.c):
                        c.disconnect = as_was(c)
                state = o.run()
                dt = time.perf_counter() - t0
                seen, steps = tap.take()
                states = ro.summary(ro.Rollouts(store).nodes(rid))
                if state != "done" or states != {"done": len(ids)}:
                    raise SystemExit(f"rollout {version}: {state} {states}")
                got = {
                    "chunk": chunk,
                    "server_nodelay": nodelay,
                    "rollout_s": round(dt, 2),
                    **chunks(seen),
                }
                if len(ids) == 1:
                    got["timeline"] = timeline(
                        t0,
                        steps + [(t, n, lf, str(off)) for t, lf, n, off in seen[:1] + seen[-1:]],
                        ids[0],
                    )
                    got["timeline"].sort()
                return got

            one = [nodes[0].node]
            runs = out["one_node"] = {
                "before": rollout("0.2.0", one, a.chunk, False),
                "nodelay": rollout("0.3.0", one, a.chunk, True),
                "nodelay_big_chunk": rollout("0.4.0", one, a.big_chunk, True),
            }
            base = out["baseline_pull_s"]
            for r in runs.values():
                r["ratio_pull_to_baseline"] = round(r["pull_s"] / base, 2) if r["pull_s"] else None
            b4 = runs["before"]["pull_s"]
            out["pull_speedup"] = {
                k: round(b4 / r["pull_s"], 1) for k, r in runs.items() if r["pull_s"] and b4
            }
            out["all_nodes"] = rollout("0.5.0", [n.node for n in nodes], a.big_chunk, True)
            tap.stop()
            out["node_feed"] = feed_bench(
                tmp / "0.2.0.ota", pub.as_json()["n"], sorted({a.chunk, a.big_chunk})
            )
        finally:
            stop.set()
            d.stop()
            store.close()
            broker.stop()
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

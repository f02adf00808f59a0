"""A virtual district of 100 nodes against a real mosquitto: processes, memory, time.

Starts mosquitto (lanterna/broker.py: password file, no anonymous access), prepares and
starts `lanterna sim`'s district of N nodes on the sim-s3 board, waits until every node
is online (its retained status) and has sent telemetry, and prints one JSON object: node
processes, their summed and per-node RSS, the time until all were online, the messages
per second the broker carried to an observer. Baseline, measured in the same run: the
RSS of one bare `micropython` interpreter started the same way.
Run: .venv/bin/python bench/bench_district.py [N]  (or `make bench`, N=100)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bare_rss_kib() -> int:
    mp = str(Path(sys.executable).with_name("micropython"))
    p = subprocess.Popen([mp, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)  # a bench, not a test: let the interpreter settle before reading
        return rss_kib(p.pid)
    finally:
        p.communicate(b"")


def main() -> None:
    import paho.mqtt.client as mqtt

    from lanterna.broker.mosquitto import Mosquitto
    from lanterna.sim.district import District, prepare

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        broker = Mosquitto(tmp / "broker")
        nodes = prepare(tmp / "state", n, "greenwich", "mqtt://127.0.0.1:1", tele_s=10)
        creds = json.loads((tmp / "state" / "credentials.json").read_text())
        broker.add_users({node: c["password"] for node, c in creds.items()})
        broker.start()
        nodes = prepare(tmp / "state", n, "greenwich", broker.url, tele_s=10)
        online: set[str] = set()
        tele: set[str] = set()
        count = [0]
        done = threading.Event()

        def on_message(_c, _u, m):
            count[0] += 1
            node = m.topic.split("/")[3]
            if m.topic.endswith("/status") and m.payload == b"online":
                online.add(node)
            elif m.topic.endswith("/tele"):
                tele.add(node)
            if len(online) == n and len(tele) == n:
                done.set()

        obs = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        obs.username_pw_set("controller", broker.users["controller"])
        obs.on_message = on_message
        obs.connect("127.0.0.1", broker.port)
        obs.subscribe("lanterna/#", qos=1)
        obs.loop_start()
        district = District(nodes, warp=1, board="sim-s3")
        t0 = time.monotonic()
        district.start()
        try:
            ok = done.wait(120)
            t_all = time.monotonic() - t0
            c0, m0 = time.monotonic(), count[0]
            time.sleep(10)  # a bench, not a test: a fixed window to count the traffic
            rate = (count[0] - m0) / (time.monotonic() - c0)
            rss = [rss_kib(x.proc.pid) for x in district.nodes if x.proc is not None]
            alive = district.alive()
        finally:
            district.stop()
            obs.loop_stop()
            broker.stop()
        base = bare_rss_kib()
        print(
            json.dumps(
                {
                    "bench": "district",
                    "nodes": n,
                    "all_online_and_reporting": ok,
                    "seconds_to_all_online": round(t_all, 2),
                    "node_processes_alive": alive,
                    "rss_total_mib": round(sum(rss) / 1024, 1),
                    "rss_per_node_kib": round(sum(rss) / max(1, len(rss))),
                    "baseline_bare_interpreter_rss_kib": base,
                    "messages_per_s_at_observer": round(rate, 1),
                    "os_cpus": os.cpu_count(),
                }
            )
        )


if __name__ == "__main__":
    main()

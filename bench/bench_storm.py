"""Reconnect storm: restart the broker under N connected protocol nodes (issue 15).

One mosquitto (persistence on, as lanterna.broker.mosquitto runs it); `lanterna sim
--protocol N` in its own process (one TCP connection per node by default: the fleet's
real shape, where every node reconnects on its own); `mosquitto_sub` with a persistent
session counting every telemetry message by (node, ts). Measured:

- baseline, same run, same broker: the broker's accept rate, a tight loop of MQTT
  CONNECT/CONNACK/close from this process (the same account, 200 at a time), and, as
  that Python client is usually the limit, the broker's ceiling on one core from its
  CPU time per connection;
- the storm: time from the restart until every node's online is acknowledged again,
  connection attempts per second (peak, from the fleet's own per-second counts), and
  their ratio to the accept rate;
- QoS 1 telemetry lost: messages the nodes queued (fleet summary) against distinct
  (node, ts) the subscriber got; must be 0 (the outboxes hold what the outage made).

    .venv/bin/python bench/bench_storm.py --nodes 10000 --tele-s 10 > storm.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lamp.net import mqtt_packet as pk
from lanterna.broker.mosquitto import Mosquitto
from lanterna.paths import tool

SITE = "storm"


async def _accept_rate(port: int, user: str, password: str, n: int, conc: int) -> dict:
    # A tight loop of whole MQTT connections: CONNECT, CONNACK, close; `conc` at a time.
    done = 0
    refused = 0

    async def one(i: int) -> None:
        nonlocal done, refused
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(bytes(pk.connect(f"baseline-{i}", 60, user, password)))
        ack = await r.readexactly(4)
        if ack[3]:
            refused += 1
        w.write(pk.DISCONNECT)
        w.close()
        done += 1

    sem = asyncio.Semaphore(conc)

    async def limited(i: int) -> None:
        async with sem:
            await one(i)

    t0 = time.monotonic()
    await asyncio.gather(*(limited(i) for i in range(n)))
    dt = time.monotonic() - t0
    return {"connections": n, "seconds": round(dt, 2), "per_s": round(n / dt), "refused": refused}


def _cpu_s(pid: int) -> float:
    # utime + stime of a process (the broker), in seconds
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _events(proc: subprocess.Popen, events: list, cv: threading.Condition) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            with cv:
                events.append((time.time(), json.loads(line)))
                cv.notify_all()


def _wait(cv: threading.Condition, events: list, name: str, after: int, timeout: float):
    with cv:
        ok = cv.wait_for(lambda: any(e["event"] == name for _, e in events[after:]), timeout)
    if not ok:
        raise SystemExit(f"bench_storm: no {name!r} event in {timeout:.0f} s")
    return next((t, e) for t, e in events[after:] if e["event"] == name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--connections", type=int, help="default: one per node")
    ap.add_argument("--tele-s", type=int, default=10, help="telemetry period of every node")
    ap.add_argument("--settle-s", type=float, default=15, help="running before the restart")
    ap.add_argument("--after-s", type=float, default=15, help="running after recovery")
    ap.add_argument("--baseline", type=int, default=5000, help="connections of the baseline")
    ap.add_argument(
        "--spread-s",
        type=float,
        default=0.0,
        help="what-if: no reconnect window below this (0: the node's own backoff)",
    )
    a = ap.parse_args()
    conns = a.connections or a.nodes
    tmp = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    pw = "storm-secret"
    broker = Mosquitto(tmp / "broker", {"lanterna-sim": pw})
    # The C subscriber counts: a persistent session survives the restart in the
    # broker's persistence file, and QoS 1 messages queued for it are kept.
    broker.start()
    sub = None
    proc = None
    try:
        env = dict(os.environ, LANTERNA_HOME=str(tmp / "home"), LANTERNA_BROKER=broker.url)
        lanterna = tool("lanterna") or "lanterna"
        base = [lanterna, "sim", "--protocol", str(a.nodes), "--site", SITE]
        base += ["--lat", "50", "--lon", "0", "--tz", "Europe/London"]
        base += ["--state-dir", str(tmp / "state"), "--json"]
        t = time.monotonic()
        subprocess.run([*base, "--init-only"], env=env, capture_output=True, text=True, check=True)
        init_s = time.monotonic() - t
        st = json.loads((tmp / "state" / f"protocol-{SITE}.json").read_text())
        pw = st["password"]
        broker.add_user("lanterna-sim", pw)
        assert broker.proc is not None
        c0, t = _cpu_s(broker.proc.pid), time.monotonic()
        baseline = asyncio.run(_accept_rate(broker.port, "lanterna-sim", pw, a.baseline, 200))
        # Whether the broker or this client was the limit: the broker's CPU meanwhile.
        baseline["broker_cpu_pct"] = round(
            100 * (_cpu_s(broker.proc.pid) - c0) / (time.monotonic() - t), 1
        )
        # The client here is Python and is usually the limit (the broker below 100 %):
        # the broker's own ceiling on one core, from its CPU per connection.
        us = 1e4 * baseline["broker_cpu_pct"] / baseline["per_s"]
        baseline["broker_us_per_connection"] = round(us, 1)
        baseline["broker_ceiling_per_s"] = round(1e6 / us) if us else None
        sub_out = open(tmp / "tele.txt", "w")  # noqa: SIM115 -- closed below
        sub = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-u",
                "controller",
                "-P",
                broker.users["controller"],
                "-i",
                "storm-count",
                "-c",
                "-q",
                "1",
                "-v",
                "-t",
                f"lanterna/v1/{SITE}/+/tele",
            ],
            stdout=sub_out,
        )
        events: list = []
        cv = threading.Condition()
        proc = subprocess.Popen(
            [*base, "--connections", str(conns), "--tele-period", str(a.tele_s)]
            + ["--reconnect-spread", str(a.spread_s)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=_events, args=(proc, events, cv), daemon=True).start()
        t_ready, ready = _wait(cv, events, "ready", 0, 600)
        time.sleep(a.settle_s)  # the fleet's steady state before the storm (a bench)
        n_before = len(events)
        t0 = time.time()
        broker.restart()  # SIGTERM (persistence saved), then started again
        t_listen = time.time()
        c0 = _cpu_s(broker.proc.pid)
        t_back, back = _wait(cv, events, "online", n_before, 600)
        storm_cpu = 100 * (_cpu_s(broker.proc.pid) - c0) / max(time.time() - t_listen, 1e-3)
        time.sleep(a.after_s)
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
        _t, stopped = _wait(cv, events, "stopped", 0, 30)
        time.sleep(2)  # the subscriber's last deliveries (a bench, not a test)
        sub.terminate()
        sub.wait(10)
        sub_out.close()
        seen = set()
        for line in (tmp / "tele.txt").read_text().splitlines():
            topic, _, payload = line.partition(" ")
            try:
                seen.add((topic.split("/")[3], json.loads(payload)["ts"]))
            except (ValueError, KeyError, IndexError):
                pass
        sent = stopped["published"].get("tele", 0)
        bins = stopped["attempts_by_100ms"]
        storm_from = max(int((t0 - stopped["started"]) * 10), 0)  # bins from the fleet's start
        storm = bins[storm_from:]
        peak = max((sum(storm[i : i + 10]) for i in range(max(len(storm) - 9, 1))), default=0)
        by_s = [sum(storm[i : i + 10]) for i in range(0, len(storm), 10)]
        out = {
            "bench": "storm",
            "nodes": a.nodes,
            "connections": conns,
            "tele_s": a.tele_s,
            "backoff": "node"
            if not a.spread_s
            else f"what-if: windows of {a.spread_s:g} s or more",
            "baseline_accept": baseline,
            "ready_s": ready["ready_s"],
            "restart_s": round(t_listen - t0, 2),
            "recovery_s": round(t_back - t0, 2),
            "recovery_after_listen_s": round(t_back - t_listen, 2),
            "broker_cpu_pct_in_recovery": round(storm_cpu, 1),
            "peak_attempts_per_s": peak,
            "peak_over_accept_rate": round(peak / baseline["per_s"], 3),
            "peak_over_broker_ceiling": round(peak / baseline["broker_ceiling_per_s"], 3)
            if baseline["broker_ceiling_per_s"]
            else None,
            "attempts_by_s_storm": by_s[:40],
            "attempts_in_storm": sum(storm),
            "tele_sent": sent,
            "tele_received_distinct": len(seen),
            "tele_lost": sent - len(seen),
            "outbox_dropped": stopped["dropped"],
            "unsent_at_stop": stopped["unsent"],
            "held_offline": stopped["held_offline"],
            "fleet_cpu_pct": stopped["cpu_pct"],
            "fleet_rss_mb": stopped["rss_mb"],
            "fleet": {k: stopped[k] for k in ("attempts", "connects", "failures", "seconds")},
            "prepare_and_register_s": round(init_s, 1),
        }
        print(json.dumps(out, indent=1))
    finally:
        for p in (proc, sub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())

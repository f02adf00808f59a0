"""Command fan-out: `schedule push` to N nodes (default 10,000), time until every ack.

The nodes are an ack-only responder (tests/ackresponder.py) in its own process: one paho
client on every node's ``cmd`` topic that answers each command with an ack of the wire
contract's shape, verifying nothing, so what is measured is the controller's side: the
signing, the store, the window of publishes and the settling of acks. The store holds the
N nodes (registered through Store.put_node), on a fresh real mosquitto (the test broker).

Cases, in one run, on the same broker, store and responder, each `--repeat` times,
alternated:
- baseline: the commander as issue 15 measured it, its source read from git at OLD_REV
  (paho's default of 20 QoS 1 messages in flight, one wait per attempt);
- today's fan-out with inflight 20, to tell what the window does from what inflight does;
- candidate: today's default (MAX_INFLIGHT, 1,000 in flight);
- with `--cli`, also `lanterna schedule push --all --json` as a user runs it (process
  start, the store, the table of N rows included), wall time.
Reported per case: seconds until the last ack (median of the repeats, and each), acks
per second, the controller's CPU (utime+stime of this process over the fan-out), the
statuses, what paho refused and what was resent; the responder's counts and the ratio
baseline / candidate. The goal (issue 15): 10,000 nodes acked within 10 s.

Run: .venv/bin/python bench/bench_fanout.py [--nodes 10000] [--repeat 3] [--cli]
     .venv/bin/python bench/bench_fanout.py --nodes 70000 --repeat 1 --candidate-only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from lanterna.broker.mosquitto import Mosquitto  # noqa: E402
from lanterna.context import Broker  # noqa: E402
from lanterna.fleet import schedules  # noqa: E402
from lanterna.fleet.commander import MAX_INFLIGHT, Commander  # noqa: E402
from lanterna.store import Store  # noqa: E402

SCHEDULE = REPO / "docs" / "examples" / "schedule-greenwich.json"
# the last commit before the fan-out: the commander that waited per attempt, paho's 20 in
# flight, publish()'s return code unread
OLD_REV = "b1551ab"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def old_commander() -> type | None:
    """The commander as issue 15 measured it: its source at OLD_REV, loaded as a module
    (None outside a git checkout)."""
    try:
        src = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{OLD_REV}:controller/lanterna/fleet/commander.py"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("old_commander")
    sys.modules["old_commander"] = mod  # dataclasses look their module up
    exec(compile(src, f"old_commander@{OLD_REV}", "exec"), mod.__dict__)
    return mod.Commander


def one(
    store: Store,
    broker: Broker,
    args: dict,
    inflight: int | None,
    timeout: float,
    others: dict,
    cls: type = Commander,
) -> dict:
    c = cls(store)
    nodes = store.nodes()
    o0 = {k: proc_cpu(v) for k, v in others.items()}
    c0, t0 = cpu(), time.monotonic()
    if inflight is None:  # the old commander: paho's defaults
        outs = c.send_mqtt(broker, nodes, "schedule", args, timeout=timeout)
    else:
        outs = c.send_mqtt(broker, nodes, "schedule", args, timeout=timeout, inflight=inflight)
    dt = time.monotonic() - t0
    statuses: dict[str, int] = {}
    for o in outs:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    return {
        "seconds": round(dt, 3),
        "acks_per_s": round(statuses.get("ok", 0) / dt, 1),
        "cpu_s": round(cpu() - c0, 2),
        **{f"cpu_s_{k}": round(proc_cpu(v) - o0[k], 2) for k, v in others.items()},
        "statuses": statuses,
        **getattr(c, "stats", {}),
    }


def case(name: str, runs: list[dict]) -> dict:
    secs = [r["seconds"] for r in runs]
    return {"case": name, "seconds_median": statistics.median(secs), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--cli", action="store_true")
    ap.add_argument(
        "--candidate-only",
        action="store_true",
        help="no baselines (a fleet above 65,535, where the old commander loses commands)",
    )
    ap.add_argument(
        "--responders", type=int, default=2, help="ack responder processes (shared sub)"
    )
    a = ap.parse_args()
    obj, _ = schedules.load(SCHEDULE)
    args = {"schedule": obj}
    out: dict = {"bench": "fanout", "nodes": a.nodes, "command": "schedule", "cases": []}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        root = Path(tmp)
        mq = Mosquitto(root / "broker")
        mq.start()
        resps: list[subprocess.Popen] = []
        try:
            store = Store(root / "lanterna.db")
            store.put_site("gw", 51.4826, 0.0077, "Europe/London")
            t0 = time.monotonic()
            for k in range(a.nodes):
                store.put_node(f"gw-{k:06d}", "gw", "sim", os.urandom(32))
            out["register_s"] = round(time.monotonic() - t0, 2)
            for k in range(a.responders):
                share = ["--share", "acks", "--id", f"resp-{k}"] if a.responders > 1 else []
                resps.append(
                    subprocess.Popen(
                        [sys.executable, str(REPO / "tests" / "ackresponder.py"), "--port",
                         str(mq.port), "--password", mq.users["controller"], *share],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )  # fmt: skip
            for r in resps:
                assert r.stdout is not None and r.stdout.readline().strip() == "ready"
            out["responders"] = a.responders
            broker = Broker("127.0.0.1", mq.port, "controller", mq.users["controller"])
            out["load_before"] = os.getloadavg()
            base, cand = [], []
            others = {"broker": [mq.proc.pid], "responders": [r.pid for r in resps]}
            old = None if a.candidate_only else old_commander()
            legacy: list[dict] = []
            for _ in range(a.repeat):  # alternated, so a busy moment hits every case
                if old is not None:
                    legacy.append(one(store, broker, args, None, a.timeout, others, old))
                if not a.candidate_only:
                    base.append(one(store, broker, args, 20, a.timeout, others))
                cand.append(one(store, broker, args, MAX_INFLIGHT, a.timeout, others))
            if legacy:
                out["cases"] += [case(f"baseline: the old commander ({OLD_REV})", legacy)]
            if base:
                out["cases"] += [case("today's fan-out with inflight 20", base)]
            out["cases"] += [case(f"candidate: today's fan-out, inflight {MAX_INFLIGHT}", cand)]
            b, c = out["cases"][0]["seconds_median"], out["cases"][-1]["seconds_median"]
            if len(out["cases"]) > 1:
                out["ratio_baseline_over_candidate"] = round(b / c, 2)
            out["goal_10k_within_10s"] = a.nodes != 10000 or c <= 10.0
            if a.cli:
                env = dict(
                    os.environ,
                    LANTERNA_HOME=str(root),
                    LANTERNA_BROKER=mq.url,
                    LANTERNA_BROKER_PASSWORD=mq.users["controller"],
                )
                t0 = time.monotonic()
                p = subprocess.run(
                    [str(Path(sys.executable).with_name("lanterna")), "schedule", "push",
                     str(SCHEDULE), "--all", "--json"],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                rows = json.loads(p.stdout) if p.returncode in (0, 1) else []
                out["cases"].append(
                    {
                        "case": "cli schedule push --all --json",
                        "seconds_wall": round(time.monotonic() - t0, 2),
                        "exit": p.returncode,
                        "ok": sum(1 for r in rows if r["status"] == "ok"),
                    }
                )
            out["load_after"] = os.getloadavg()
        finally:
            out["responder"] = {}
            for r in resps:
                r.send_signal(signal.SIGTERM)
                try:
                    text, _ = r.communicate(timeout=30)
                    for k, v in json.loads(text.splitlines()[-1]).items():
                        out["responder"][k] = out["responder"].get(k, 0) + v
                except (subprocess.TimeoutExpired, ValueError, IndexError):
                    r.kill()
            mq.stop()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Ingest rate and CPU per message of `lanterna serve` against the C client's ceiling.

The stream: N telemetry messages at QoS 1, in the node's tele shape (validated against the
`tele` schema), from `--nodes` distinct node ids, each node's ts one minute apart (so
nothing collapses on the store's UNIQUE(node, ts)). They are published by `mosquitto_pub -l`
processes, `--publishers` at a time, each in its own process: the publisher must outrun the
subscriber, or the bench measures the publisher (one paho publisher tops out near 4,000
msg/s; one `mosquitto_pub -l` about 16,000, after a fixed 0.2 s of its own). A process per
node id, because `mosquitto_pub -l` sends every line to one topic; every node reads the same
payload file.

For every case, on a fresh mosquitto (its queue unbounded, so a subscriber that falls
behind loses nothing while the broker holds the backlog):
- the ceiling: `mosquitto_sub -q 1` receiving the stream, its lines counted;
- the subscriber under test: `lanterna serve` as a subprocess, into SQLite or PostgreSQL,
  with 1 or 2 workers (what this checkout's serve offers; missing cases say why), the
  stored rows counted.
Each subscriber is warmed up first (messages of one extra node until one arrives, then
counted off) so its start-up is neither timed nor charged. Rate: N / (the last message
counted - the first published). CPU per message: utime+stime of the subscriber and its
child processes (/proc) over the run, divided by N; the broker's CPU likewise.

Printed: one JSON object (load average before and after: the machine is shared).
Cases `paho:1`, `paho-buffered:1` and `paho-v311:1` (not run by default): bench/paho_sub.py,
paho alone with the session settings serve had on paho and no store, the same reading
through a buffer, and on MQTT 3.1.1: what paho cost of serve's CPU per message before
serve had its own client (lanterna.fleet.mqttsub).
Run: .venv/bin/python bench/bench_ingest.py [--messages 200000] [--cases sqlite:1,pg:2]
     [--profile DIR [--profile-db sqlite|pg]]  (py-spy, when installed: where serve's CPU
     goes, in one extra run of serve alone; --cases "" for the profile only)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
FILTER = "lanterna/v1/+/+/tele"
PAHO_CASES = {"paho": [], "paho-buffered": ["--buffered"], "paho-v311": ["--v311"]}


def tele(k: int) -> str:
    """The k-th telemetry message of a node: the fields lamp.telemetry.snapshot sends."""
    t0 = 1795600000 + k * 60
    return json.dumps(
        {
            "v": 1,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "level": (k * 7) % 101,
            "source": "schedule",
            "energy": {
                "kwh": round(k * 0.0005, 4),
                "power_w": 31.5,
                "switch_on": 1 + k // 600,
                "burn_h": round(k / 60, 2),
                "source": "model",
            },
            "faults": [],
            "sensors": {"bme280": {"fault": None, "temp_x10": [80, 85, 90, 6]}},
            "units": {"temp_x10": "degC"},
            "evse": None,
            "heap_free": 30000 - k % 500,
            "uptime_s": k * 60,
            "mqtt_dropped": 0,
        },
        separators=(",", ":"),
    )


def check_shape() -> None:
    import jsonschema

    schema = json.loads((ROOT / "controller/lanterna/wire/schemas/tele.json").read_text())
    jsonschema.validate(json.loads(tele(3)), schema)


def cpu_s(pid: int) -> float:
    """utime+stime of `pid` and every live descendant, in seconds."""
    kids: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
        kids.setdefault(int(f[1]), []).append(int(d))
        times[int(d)] = int(f[11]) + int(f[12])  # utime, stime
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0)
        todo.extend(kids.get(p, []))
    return total / TICK


class Broker:
    """A fresh mosquitto (lanterna.broker.mosquitto, the test broker) with an unbounded
    queue per session."""

    def __init__(self, root: Path) -> None:
        from lanterna.broker.mosquitto import Mosquitto

        self.m = Mosquitto(root)
        conf = root / "mosquitto.conf"
        text = re.sub(r"(?m)^max_queued_messages .*$", "", conf.read_text())
        conf.write_text(text + "max_queued_messages 0\n")  # 0: no limit
        self.m.start()
        assert self.m.proc is not None
        self.pid = self.m.proc.pid
        self.port = self.m.port
        self.pw = self.m.users["controller"]

    def auth(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-u", "controller", "-P", self.pw]

    def stop(self) -> None:
        self.m.stop()


def publish(b: Broker, node: str, lines: bytes) -> None:
    """One node's messages, through one mosquitto_pub -l, waited for."""
    topic = f"lanterna/v1/bench/{node}/tele"
    subprocess.run(
        ["mosquitto_pub", *b.auth(), "-q", "1", "-M", "1000", "-t", topic, "-l"],
        input=lines,
        check=True,
    )


class Stream:
    """The stream's publishers: `publishers` mosquitto_pub processes at a time, one per node."""

    def __init__(self, b: Broker, nodes: int, publishers: int, payloads: Path):
        self.b, self.nodes, self.publishers, self.payloads = b, nodes, publishers, payloads
        self.procs: list[subprocess.Popen] = []
        self.todo = list(range(nodes))
        self.t_start = self.t_end = 0.0

    def start(self) -> None:
        self.t_start = time.monotonic()
        self.pump()

    def pump(self) -> bool:
        """Reap finished publishers, start the next; True once all are done."""
        for p in list(self.procs):
            if p.poll() is not None:
                if p.returncode:
                    raise SystemExit(f"mosquitto_pub exited {p.returncode}")
                self.procs.remove(p)
        while self.todo and len(self.procs) < self.publishers:
            n = self.todo.pop(0)
            topic = f"lanterna/v1/bench/bench-{n:06d}/tele"
            with self.payloads.open("rb") as f:
                p = subprocess.Popen(
                    ["mosquitto_pub", *self.b.auth(), "-q", "1", "-M", "1000", "-t", topic, "-l"],
                    stdin=f,
                )
            self.procs.append(p)
        done = not self.todo and not self.procs
        if done and not self.t_end:
            self.t_end = time.monotonic()
        return done

    def kill(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def warm(b: Broker, count, timeout: float = 20.0) -> int:
    """Publish to node bench-warmup until the subscriber has one; -> its count after the
    stragglers are in (what the run's count starts from)."""
    k = 0
    deadline = time.monotonic() + timeout
    while count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"the subscriber took no warm-up message in {timeout} s")
        publish(b, "bench-warmup", (tele(100000 + k) + "\n").encode())
        k += 1
        time.sleep(0.1)  # a bench: one warm-up message per 0.1 s until one is in
    time.sleep(1.0)  # the last warm-up messages in flight arrive (a bench, not a test)
    return count()


def measure(
    b: Broker, proc_pid: int, count, n: int, a, payloads: Path, poll: float, db_pid: int = 0
) -> dict:
    """Run the stream past a subscriber whose received total is count(), looked at every
    `poll` s (a COUNT(*) on a store costs its server CPU: not too often); -> figures."""
    base = warm(b, count)
    cpu0, bcpu0, dcpu0 = cpu_s(proc_pid), cpu_s(b.pid), cpu_s(db_pid) if db_pid else 0.0
    s = Stream(b, a.nodes, a.publishers, payloads)
    s.start()
    deadline = time.monotonic() + a.timeout
    got = 0
    while True:
        s.pump()
        got = count() - base
        if got >= n or time.monotonic() > deadline:
            break
        time.sleep(poll)  # polling the subscriber's count, bounded by the deadline
    t_done = time.monotonic()
    cpu1, bcpu1, dcpu1 = cpu_s(proc_pid), cpu_s(b.pid), cpu_s(db_pid) if db_pid else 0.0
    while not s.pump():  # publishers finish (they have, once everything arrived)
        if time.monotonic() > deadline + 10:
            s.kill()
            break
        time.sleep(0.05)
    time.sleep(0.5)  # anything beyond n (a duplicate) would show up now
    extra = count() - base - got
    dt = t_done - s.t_start
    pub_dt = (s.t_end or t_done) - s.t_start
    return {
        "received": got + extra,
        "lost": max(n - got - extra, 0),
        "duplicates": max(got + extra - n, 0),
        "seconds": round(dt, 2),
        "rate_per_s": round(got / dt, 1),
        "cpu_us_per_msg": round((cpu1 - cpu0) / max(got, 1) * 1e6, 1),
        "broker_cpu_us_per_msg": round((bcpu1 - bcpu0) / max(got, 1) * 1e6, 1),
        **(
            {"db_server_cpu_us_per_msg": round((dcpu1 - dcpu0) / max(got, 1) * 1e6, 1)}
            if db_pid
            else {}
        ),
        "publishers_seconds": round(pub_dt, 2),
        "publish_rate_per_s": round(n / pub_dt, 1) if pub_dt > 0 else None,
    }


def ceiling(tmp: Path, b: Broker, n: int, a, payloads: Path) -> dict:
    out = tmp / "sub.out"
    f = out.open("wb")
    p = subprocess.Popen(["mosquitto_sub", *b.auth(), "-q", "1", "-t", FILTER], stdout=f)
    lines = [0, 0]  # lines counted, bytes read

    def count() -> int:
        with out.open("rb") as r:
            r.seek(lines[1])
            chunk = r.read()
        lines[0] += chunk.count(b"\n")
        lines[1] += len(chunk)
        return lines[0]

    try:
        r = measure(b, p.pid, count, n, a, payloads, 0.05)
    finally:
        p.terminate()
        p.wait()
        f.close()
        out.unlink()
    return {"subscriber": "mosquitto_sub", **r}


def paho_case(tmp: Path, b: Broker, n: int, a, payloads: Path, flags: list[str]) -> dict:
    """bench/paho_sub.py: paho alone with serve's session settings, no store."""
    cf = tmp / "paho.count"
    cf.write_text("0")
    cmd = [sys.executable, str(ROOT / "bench/paho_sub.py"), str(b.port), "controller", b.pw]
    cmd += [FILTER, str(cf), *flags]
    p = subprocess.Popen(cmd)

    def count() -> int:
        return int(cf.read_text() or 0)

    try:
        r = measure(b, p.pid, count, n, a, payloads, 0.05)
    finally:
        p.terminate()
        p.wait()
    return {"subscriber": " ".join(["paho_sub.py", *flags]), **r}


def serve_flags() -> str:
    return subprocess.run(
        [str(ROOT / ".venv/bin/lanterna"), "serve", "--help"], capture_output=True, text=True
    ).stdout


def serve_case(
    tmp: Path,
    b: Broker,
    db: str,
    workers: int,
    n: int,
    a,
    payloads: Path,
    profile: Path | None = None,
    db_pid: int = 0,
) -> dict:
    from lanterna.store.db import Store

    cmd = [str(ROOT / ".venv/bin/lanterna"), "--db", db, "--broker", f"mqtt://127.0.0.1:{b.port}"]
    cmd += ["serve", "--report-s", "3600"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    if profile is not None:
        cmd = [
            str(ROOT / ".venv/bin/py-spy"),
            "record",
            "-r",
            "200",
            "--format",
            "raw",
            "-o",
            str(profile),
            "--subprocesses",
            "--threads",
            "--",
            *cmd,
        ]
    env = dict(
        os.environ,
        LANTERNA_BROKER_USER="controller",
        LANTERNA_BROKER_PASSWORD=b.pw,
        LANTERNA_HOME=str(tmp / "home"),
    )
    log = (tmp / "serve.log").open("w+")
    p = subprocess.Popen(cmd, env=env, stderr=log, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while "serving" not in Path(log.name).read_text():
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise SystemExit("serve did not start: " + Path(log.name).read_text())
        time.sleep(0.1)  # waiting for serve's start line, bounded
    store = Store(db) if "://" in db else Store(Path(db))

    def count() -> int:
        return store.telemetry_count()

    try:
        r = measure(b, p.pid, count, n, a, payloads, 0.2, db_pid)
    finally:
        target = p.pid
        if profile is not None:  # serve is py-spy's child: stopped, py-spy writes and exits
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
            target = int(kids[0]) if kids else p.pid
        os.kill(target, signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        r_final = count()
        store.close()
        log.close()
    r["stored_rows_total"] = r_final
    return {
        "subscriber": "lanterna serve",
        "db": db.split(":")[0] if "://" in db else "sqlite",
        "workers": workers,
        **r,
    }


def summarize(raw: Path, top: int = 25) -> dict:
    """py-spy's raw stacks -> the share of samples per thread, per function (inclusive)
    and per line (self), in percent."""
    from collections import Counter

    inc: Counter[str] = Counter()
    own: Counter[str] = Counter()
    thread: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, k = line.rpartition(" ")
        frames = stack.split(";")
        n = int(k)
        total += n
        thread[frames[1].split(":")[-1].strip()] += n
        for f in {x.split(" (")[0] for x in frames[2:]}:
            inc[f] += n
        own[frames[-1]] += n

    def pct(c: Counter[str]) -> dict:
        return {k: round(100 * v / max(total, 1), 1) for k, v in c.most_common(top)}

    return {"samples": total, "threads": pct(thread), "inclusive": pct(inc), "self": pct(own)}


def pg_server():
    """A throwaway PostgreSQL cluster (tests/pgserver.py), or None and why not."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import pgserver  # type: ignore[import-not-found]
    except ImportError:
        return None, "tests/pgserver.py not in this checkout"
    if not pgserver.available():
        return None, "PostgreSQL is not installed"
    return pgserver.PgServer().start(), None


def postmaster(srv) -> int:
    """The cluster's server pid (its backends are its children), from postmaster.pid."""
    return int((Path(srv.data) / "postmaster.pid").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--publishers", type=int, default=12, help="mosquitto_pub processes at once")
    ap.add_argument("--cases", default="sqlite:1,sqlite:2,pg:1,pg:2")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per subscriber")
    ap.add_argument("--profile", type=Path, help="directory for a py-spy profile of serve")
    ap.add_argument("--profile-db", choices=("sqlite", "pg"), default="sqlite")
    a = ap.parse_args()
    n = a.messages // a.nodes * a.nodes
    check_shape()
    flags = serve_flags()
    out: dict = {
        "bench": "ingest",
        "messages": n,
        "nodes": a.nodes,
        "publishers": a.publishers,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        payloads = tmp / "tele.lines"
        payloads.write_text("".join(tele(k) + "\n" for k in range(n // a.nodes)))
        out["payload_bytes_mean"] = round(payloads.stat().st_size / (n // a.nodes) - 1, 1)
        pg = None
        try:
            for case in filter(None, a.cases.split(",")):
                kind, w = case.split(":")
                workers = int(w)
                row: dict = {"case": case}
                if kind in PAHO_CASES:  # paho alone: what serve's client costs
                    root = tmp / f"broker-{len(out['cases'])}"
                    b = Broker(root)
                    try:
                        ceil = ceiling(tmp, b, n, a, payloads)
                        got = paho_case(tmp, b, n, a, payloads, PAHO_CASES[kind])
                    finally:
                        b.stop()
                        shutil.rmtree(root, ignore_errors=True)
                    row.update(
                        {
                            "subscriber": got,
                            "ceiling": ceil,
                            "ratio_rate_to_mosquitto_sub": round(
                                got["rate_per_s"] / ceil["rate_per_s"], 3
                            ),
                            "ratio_cpu_to_mosquitto_sub": round(
                                got["cpu_us_per_msg"] / max(ceil["cpu_us_per_msg"], 0.1), 1
                            ),
                        }
                    )
                    out["cases"].append(row)
                    print(json.dumps(row), file=sys.stderr)
                    continue
                if workers > 1 and "--workers" not in flags:
                    out["cases"].append({**row, "skipped": "serve has no --workers here"})
                    continue
                if kind == "pg":
                    if pg is None:
                        pg, why = pg_server()
                        if pg is None:
                            out["cases"].append({**row, "skipped": why})
                            continue
                    db = pg.create_db()  # a fresh database per case
                else:
                    db = str(tmp / f"bench-{len(out['cases'])}.db")
                root = tmp / f"broker-{len(out['cases'])}"
                b = Broker(root)
                try:
                    ceil = ceiling(tmp, b, n, a, payloads)
                    dbp = postmaster(pg) if kind == "pg" else 0
                    got = serve_case(tmp, b, db, workers, n, a, payloads, None, dbp)
                finally:
                    b.stop()
                    shutil.rmtree(root, ignore_errors=True)
                row.update(
                    {
                        "serve": got,
                        "ceiling": ceil,
                        "ratio_rate_to_mosquitto_sub": round(
                            got["rate_per_s"] / ceil["rate_per_s"], 3
                        ),
                        "ratio_cpu_to_mosquitto_sub": round(
                            got["cpu_us_per_msg"] / max(ceil["cpu_us_per_msg"], 0.1), 1
                        ),
                        "zero_loss": got["lost"] == 0 and got["duplicates"] == 0,
                    }
                )
                out["cases"].append(row)
                print(json.dumps(row), file=sys.stderr)
            if a.profile is not None:  # serve alone under py-spy: its figures are not kept
                a.profile.mkdir(parents=True, exist_ok=True)
                kind = a.profile_db
                if kind == "pg" and pg is None:
                    pg, why = pg_server()
                    if pg is None:
                        raise SystemExit(f"--profile-db pg: {why}")
                db = pg.create_db() if kind == "pg" else str(tmp / "profile.db")
                root = tmp / "broker-profile"
                b = Broker(root)
                try:
                    raw = a.profile / f"serve-{kind}.pyspy.txt"
                    serve_case(tmp, b, db, 1, n, a, payloads, raw)
                finally:
                    b.stop()
                out["profile"] = {"db": kind, "file": str(raw), **summarize(raw)}
        finally:
            if pg is not None:
                pg.stop()
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

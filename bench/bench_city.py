"""A city on one machine: protocol-level nodes (`lanterna sim --protocol`), one mosquitto,
`lanterna serve`, and what the controller costs and keeps.

Scenarios (all against a real mosquitto on loopback, the fleet and serve each in their
own process, so neither shares the GIL with the other or with this script):

- ``sustain``: N nodes (default 250,000) at a telemetry period P (default 900 s: 278
  msg/s) for D seconds (default 600). Measured: ingest lag (the store's `received` minus
  the node's `ts`, p50/p99/max; the node's ts has whole seconds, so the lag is +-1 s),
  serve's peak RSS and CPU per message, store bytes per telemetry row and per node-day,
  telemetry published against stored (loss). Baseline in the same run: `mosquitto_sub`
  receiving the same telemetry stream from the same broker, its lag measured the same way
  (what the broker's delivery alone costs).
- ``outage``: N nodes (default 10,000) at P (default 60 s); serve is stopped for O seconds
  (default 120) in the middle of D (default 360) and started again: every telemetry
  message the fleet published must be in the store exactly once when it has caught up
  (rows per node and ts against the fleet's count; the store's UNIQUE(node, ts) makes a
  doubled row impossible, so a missing one is what is counted). Baseline: the same count
  without the outage is the fleet's own published figure.

Printed: one JSON object per scenario (load average before and after: the machine is
shared). Store: SQLite in the run's temp dir, or `--db postgresql://...`, or `--pg` (a
throw-away cluster from tests/pgserver.py).
Run: .venv/bin/python bench/bench_city.py sustain [--nodes 250000 --period 900 --seconds 600]
     .venv/bin/python bench/bench_city.py outage [--nodes 10000 --period 60 --outage 120]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).with_name("lanterna")
SITE = "greenwich"
TICK = os.sysconf("SC_CLK_TCK")


def proc_status(pid: int, key: str) -> int:
    """A kB figure from /proc/PID/status (VmRSS, VmHWM), 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """utime + stime of a process and its waited-for children, in seconds."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in f[11:15]) / TICK


def tree_pids(pid: int) -> list[int]:
    """pid and its descendants (serve --workers runs its workers as children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo.extend(int(k) for k in kids)
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


class Run:
    """One scenario's processes: broker, store, fleet, serve; everything stopped at the end."""

    def __init__(self, tmp: Path, a: argparse.Namespace) -> None:
        from lanterna.broker.mosquitto import Mosquitto

        self.tmp = tmp
        self.a = a
        self.pg = None
        db = a.db
        if a.pg:
            sys.path.insert(0, str(ROOT / "tests"))
            from pgserver import PgServer  # type: ignore[import-not-found]

            self.pg = PgServer().start()
            db = self.pg.create_db("city")
        self.db = db or str(tmp / "lanterna.db")
        self.broker = Mosquitto(tmp / "broker")
        self.env = dict(
            os.environ,
            LANTERNA_HOME=str(tmp),
            LANTERNA_DB=self.db,
            LANTERNA_BROKER=self.broker.url,
            LANTERNA_BROKER_PASSWORD=self.broker.users["controller"],
        )
        self.procs: list[subprocess.Popen] = []
        self.fleet: subprocess.Popen | None = None
        self.events: list[dict] = []
        self._ev = threading.Condition()

    # the pieces
    def lanterna(self, *args: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen([str(BIN), *args], env=self.env, **kw)
        self.procs.append(p)
        return p

    def prepare_fleet(self) -> None:
        a = self.a
        p = self.lanterna(
            "sim", "--protocol", str(a.nodes), "--site", SITE, "--state-dir",
            str(self.tmp / "state"), "--init-only", "--json",
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        out, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SystemExit(f"sim --init-only failed: {out}")
        st = json.loads((self.tmp / "state" / f"protocol-{SITE}.json").read_text())
        self.broker.add_user(st["user"], st["password"])

    def start_fleet(self) -> None:
        a = self.a
        args = ["sim", "--protocol", str(a.nodes), "--site", SITE, "--state-dir",
                str(self.tmp / "state"), "--tele-period", str(a.period), "--json"]  # fmt: skip
        if a.connections:
            args += ["--connections", str(a.connections)]
        self.fleet = self.lanterna(
            *args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        threading.Thread(target=self._read_events, args=(self.fleet,), daemon=True).start()

    def _read_events(self, p: subprocess.Popen) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._ev:
                self.events.append(ev)
                self._ev.notify_all()

    def event(self, name: str, timeout: float) -> dict:
        with self._ev:
            ok = self._ev.wait_for(
                lambda: any(e.get("event") == name for e in self.events), timeout
            )
            if not ok:
                raise SystemExit(f"the fleet said no {name!r} within {timeout:.0f} s")
            return next(e for e in self.events if e.get("event") == name)

    def stop_fleet(self) -> dict:
        assert self.fleet is not None
        self.fleet.send_signal(signal.SIGINT)
        self.fleet.wait(120)
        return self.event("stopped", 10)

    def start_serve(self) -> subprocess.Popen:
        args = ["serve", "--json"]
        if self.a.workers > 1:
            args += ["--workers", str(self.a.workers)]
        p = self.lanterna(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stderr is not None
        line = p.stderr.readline()
        if not line.startswith("serving"):
            raise SystemExit(f"serve did not start: {line}{p.stderr.read()}")
        threading.Thread(target=p.stderr.read, daemon=True).start()
        return p

    def stop_serve(self, p: subprocess.Popen) -> None:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=300)

    # the store: counts with the store's own code; lag and size with SQL of its schema
    def store(self):
        from lanterna.store import Store

        return Store(self.db)

    @property
    def is_pg(self) -> bool:
        return self.db.startswith(("postgresql:", "postgres:"))

    def tele_rows(self) -> int:
        with self.store() as s:
            return s.telemetry_count()

    def lags(self) -> list[float]:
        with self.store() as s, s.tx() as db:
            rows = db.execute("SELECT received - ts AS lag FROM telemetry")
            return [r["lag"] if isinstance(r, dict) else r[0] for r in rows]

    def store_bytes(self) -> int:
        """What the telemetry takes: PostgreSQL's relations (every partition, indexes and
        TOAST included), or SQLite's pages of the table and its indexes (dbstat)."""
        if self.is_pg:
            with self.store() as s, s.tx() as db:
                q = (
                    "SELECT COALESCE(SUM(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits"
                    " WHERE inhparent = 'telemetry'::regclass"
                )
                r = next(iter(db.execute(q)))
                return int(next(iter(r.values())) if isinstance(r, dict) else r[0])
        import sqlite3

        c = sqlite3.connect(self.db)
        try:
            q = (
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN"
                " (SELECT name FROM sqlite_master WHERE tbl_name = 'telemetry')"
            )
            return int(c.execute(q).fetchone()[0] or 0)
        finally:
            c.close()

    def wait_rows(self, want: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        n = self.tele_rows()
        while n < want and time.monotonic() < deadline:
            time.sleep(1.0)  # polling the store's count, bounded by the deadline
            n = self.tele_rows()
        return n

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.broker.stop()
        if self.pg is not None:
            self.pg.stop()


class SubLag:
    """The baseline: mosquitto_sub on the same telemetry, its receive lag per message."""

    def __init__(self, r: Run) -> None:
        import shutil

        exe = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
        b = r.broker
        self.p = subprocess.Popen(
            [exe, "-h", "127.0.0.1", "-p", str(b.port), "-u", "controller", "-P",
             b.users["controller"], "-q", "1", "-t", "lanterna/v1/+/+/tele", "-F", "%p"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        r.procs.append(self.p)
        self.lag: list[float] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        from calendar import timegm

        assert self.p.stdout is not None
        for line in self.p.stdout:
            now = time.time()
            try:
                ts = json.loads(line)["ts"]
            except (ValueError, KeyError):
                continue
            self.lag.append(now - timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))

    def stop(self) -> list[float]:
        self.p.terminate()
        self.p.wait(10)
        self.t.join(10)
        return self.lag


def sustain(tmp: Path, a: argparse.Namespace) -> dict:
    r = Run(tmp, a)
    out: dict = {"scenario": "sustain", "nodes": a.nodes, "period_s": a.period,
                 "seconds": a.seconds, "workers": a.workers,
                 "store": "postgresql" if r.is_pg else "sqlite"}  # fmt: skip
    try:
        r.broker.start()
        t = time.monotonic()
        r.prepare_fleet()
        out["register_s"] = round(time.monotonic() - t, 1)
        serve = r.start_serve()
        base = SubLag(r)
        t = time.monotonic()
        r.start_fleet()
        ready = r.event("ready", 1800)
        out["fleet_ready_s"] = round(time.monotonic() - t, 1)
        rows0, bytes0 = r.tele_rows(), r.store_bytes()
        cpu0 = sum(cpu_s(p) for p in tree_pids(serve.pid))
        t0 = time.monotonic()
        peak_rss = 0
        while time.monotonic() - t0 < a.seconds:
            time.sleep(5)  # sampling serve's RSS over the run, not synchronising
            peak_rss = max(peak_rss, sum(proc_status(p, "VmRSS") for p in tree_pids(serve.pid)))
        summary = r.stop_fleet()
        published = summary["published"].get("tele", 0)
        rows = r.wait_rows(published, 600)
        cpu = sum(cpu_s(p) for p in tree_pids(serve.pid)) - cpu0
        lags = r.lags()
        sub = base.stop()
        r.stop_serve(serve)
        tele_rows = rows - rows0
        grown = r.store_bytes() - bytes0
        per_row = grown / tele_rows if tele_rows else None
        out.update(
            fleet={k: summary.get(k) for k in ("connections", "cpu_pct", "rss_mb", "dropped",
                                                "unsent", "attempts_peak_per_s")},
            fleet_ready=ready.get("ready_s"),
            tele_published=published,
            tele_stored=rows,
            lost=published - rows,
            rate_per_s=round(tele_rows / a.seconds, 1),
            lag_s={"p50": pct(lags, 0.5), "p99": pct(lags, 0.99), "max": pct(lags, 1.0)},
            baseline_mosquitto_sub_lag_s={"p50": pct(sub, 0.5), "p99": pct(sub, 0.99),
                                          "max": pct(sub, 1.0), "messages": len(sub)},
            serve_peak_rss_mb=round(peak_rss / 1024, 1),
            serve_cpu_us_per_msg=round(1e6 * cpu / tele_rows, 1) if tele_rows else None,
            store_bytes_per_row=round(per_row, 1) if per_row else None,
            store_mb_per_day=round(per_row * a.nodes * 86400 / a.period / 1e6, 1)
            if per_row
            else None,
            store_bytes_per_node_day=round(per_row * 86400 / a.period) if per_row else None,
        )  # fmt: skip
    finally:
        r.close()
    return out


def outage(tmp: Path, a: argparse.Namespace) -> dict:
    r = Run(tmp, a)
    out: dict = {"scenario": "outage", "nodes": a.nodes, "period_s": a.period,
                 "seconds": a.seconds, "outage_s": a.outage, "workers": a.workers,
                 "store": "postgresql" if r.is_pg else "sqlite"}  # fmt: skip
    try:
        r.broker.start()
        r.prepare_fleet()
        serve = r.start_serve()
        r.start_fleet()
        r.event("ready", 1800)
        t0 = time.monotonic()
        before = (a.seconds - a.outage) / 2
        time.sleep(before)  # the scenario's timeline: serve up, then down, then up again
        r.stop_serve(serve)
        down_rows = r.tele_rows()
        time.sleep(a.outage)  # serve away for the outage
        t_back = time.monotonic()
        serve = r.start_serve()
        time.sleep(max(0.0, a.seconds - (time.monotonic() - t0)))  # the rest of the run
        summary = r.stop_fleet()
        published = summary["published"].get("tele", 0)
        rows = r.wait_rows(published, 900)
        caught_up = time.monotonic() - t_back
        r.stop_serve(serve)
        out.update(
            tele_published=published,
            tele_stored=rows,
            stored_when_serve_stopped=down_rows,
            lost=published - rows,
            fleet_unsent=summary.get("unsent"),
            fleet_dropped=summary.get("dropped"),
            restart_to_all_stored_s=round(caught_up, 1),  # the rest of the run included
        )
    finally:
        r.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", choices=("sustain", "outage"))
    ap.add_argument("--nodes", type=int)
    ap.add_argument("--period", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--outage", type=int, default=120)
    ap.add_argument("--connections", type=int)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--db")
    ap.add_argument("--pg", action="store_true")
    a = ap.parse_args()
    defaults = {"sustain": (250_000, 900, 600), "outage": (10_000, 60, 360)}[a.scenario]
    a.nodes = a.nodes or defaults[0]
    a.period = a.period or defaults[1]
    a.seconds = a.seconds or defaults[2]
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-city-") as t:
        res = (sustain if a.scenario == "sustain" else outage)(Path(t), a)
    res["loadavg_before"] = [round(x, 2) for x in load0]
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

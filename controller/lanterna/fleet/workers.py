"""`lanterna serve --workers N`: N ingest workers, each its own process, supervised.

Processes, not threads: a worker spends its time in paho's parser and the store's
inserts, both under the GIL (one `serve` tops out near one core: 166 us of CPU per
message, issue 15). Each worker is `lanterna serve --workers 1 --first-worker K`, so it
has the fixed MQTT session of index K (lanterna.fleet.ingest) and the broker's shared
subscription spreads the fleet over the workers.

The supervisor:
- starts the workers and is ready once every one is subscribed (its "serving" line);
- restarts a worker that exits while it is not stopping, under the same index, so its
  session, and the messages the broker holds in it (mosquitto 2.0 keeps a dead member's
  unacknowledged and queued messages in its session, docs/mqtt.md), resume at once;
  a worker that keeps dying is restarted after a growing wait (1 s .. 30 s);
- forwards SIGTERM (for SIGTERM or SIGINT) to every worker, waits for each to commit
  and exit, and sums their final counts. The workers die with it (PR_SET_PDEATHSIG), so
  a supervisor killed with SIGKILL leaves none behind.
Worker lines on stderr are passed on with a ``wK:`` tag.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from lanterna.procs import die_with_parent

BACKOFF_MAX_S = 30.0
# a worker up this long before dying is restarted at once
HEALTHY_S = 10.0


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    ready: threading.Event = field(default_factory=threading.Event)
    restarts: int = 0
    failures: int = 0  # exits in a row, each soon after its start
    exits: list[int] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)  # each run's final counts
    last_line: str = ""
    restart_at: float | None = None


class Supervisor:
    def __init__(
        self,
        argv: list[str],
        first: int,
        n: int,
        env: dict[str, str] | None = None,
        err: IO[str] | None = None,
    ) -> None:
        """`argv`: the `lanterna ... serve` command without --workers/--first-worker/--json;
        each worker gets `--workers 1 --first-worker K --json` appended."""
        self.argv = argv
        self.env = env
        self.err = err or sys.stderr
        self.workers = [Worker(first + k) for k in range(n)]
        self.stopping = False
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def _spawn(self, w: Worker) -> None:
        w.ready.clear()
        w.proc = subprocess.Popen(
            [*self.argv, "--workers", "1", "--first-worker", str(w.index), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            preexec_fn=die_with_parent,
        )
        w.started = time.monotonic()
        threading.Thread(target=self._relay, args=(w, w.proc), daemon=True).start()

    def _relay(self, w: Worker, proc: subprocess.Popen) -> None:
        # the worker's stderr, tagged; its "serving" line (subscribed) makes it ready
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n")
            w.last_line = line
            if line.startswith("serving ") and not w.ready.is_set():
                w.ready.set()
                continue
            with self._lock:
                print(f"w{w.index}: {line}", file=self.err, flush=True)

    def start(self, timeout: float = 30.0) -> None:
        """Every worker started and subscribed; RuntimeError (with the failing worker's
        last line) when one exits first or does not subscribe in time, all stopped."""
        for w in self.workers:
            self._spawn(w)
        deadline = time.monotonic() + timeout
        for w in self.workers:
            while not w.ready.wait(0.1):
                assert w.proc is not None
                if w.proc.poll() is not None or time.monotonic() > deadline:
                    code = w.proc.poll()
                    self.stop()
                    why = w.last_line.removeprefix("Error: ") or (
                        f"exit {code}" if code is not None else "no answer"
                    )
                    raise WorkerFailed(f"worker {w.index}: {why}", code)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.proc is not None]

    def check(self) -> list[str]:
        """Restart the workers that exited; what happened, one line each."""
        out = []
        now = time.monotonic()
        for w in self.workers:
            if self.stopping or w.proc is None:
                continue
            code = w.proc.poll()
            if code is None:
                continue
            if w.restart_at is None:
                w.exits.append(code)
                self._collect(w, w.proc)
                w.failures = 0 if now - w.started >= HEALTHY_S else w.failures + 1
                wait = 0.0 if w.failures <= 1 else min(BACKOFF_MAX_S, 2.0 ** (w.failures - 1))
                w.restart_at = now + wait
                out.append(f"worker {w.index} exited ({code}): restarting in {wait:g} s")
            if now >= w.restart_at:
                w.restart_at = None
                w.restarts += 1
                self._spawn(w)
                assert w.proc is not None
                out.append(f"worker {w.index}: pid {w.proc.pid}")
        return out

    def _collect(self, w: Worker, proc: subprocess.Popen) -> None:
        # the final counts a worker printed (none from one killed with SIGKILL)
        assert proc.stdout is not None
        text = proc.stdout.read()
        try:
            w.finals.append(json.loads(text))
        except ValueError:
            pass

    def run_until(self, stop: threading.Event, report: Callable[[str], None] | None = None) -> None:
        while not stop.wait(0.2):
            for line in self.check():
                if report:
                    report(line)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to every worker; each commits what it holds and exits."""
        self.stopping = True
        live = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for w in live:
            assert w.proc is not None
            w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                w.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            if w in live:
                w.exits.append(w.proc.returncode)
                self._collect(w, w.proc)

    def stats(self) -> dict[str, Any]:
        """The workers' final counts summed, and each worker's."""
        keys = ("received", "stored", "skipped", "batches", "connects")
        total = {k: 0 for k in keys}
        per = []
        dropped = None
        for w in self.workers:
            mine = {k: sum(int(f.get(k) or 0) for f in w.finals) for k in keys}
            for k in keys:
                total[k] += mine[k]
            for f in w.finals:
                if f.get("broker_dropped") is not None:
                    dropped = max(dropped or 0, int(f["broker_dropped"]))
            per.append({"worker": w.index, **mine, "restarts": w.restarts, "exits": w.exits})
        dt = max(time.monotonic() - self.started, 1e-9)
        return {
            **total,
            "broker_dropped": dropped,
            "seconds": round(dt, 1),
            "rate_per_s": round(total["stored"] / dt, 1),
            "restarts": sum(w.restarts for w in self.workers),
            "workers": per,
        }


class WorkerFailed(Exception):
    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


def worker_argv(db: str | None, serve_args: list[str]) -> list[str]:
    """The command line of a worker: this Python, the lanterna CLI, `--db`, serve."""
    argv = [sys.executable, "-c", "from lanterna.cli import main; main()"]
    if db:
        argv += ["--db", db]
    return [*argv, "serve", *serve_args]


def worker_env(broker_url: str | None) -> dict[str, str]:
    # The broker URL travels in the environment, not argv: it may hold a password, and
    # argv is readable by every user (/proc/PID/cmdline), the environment only by us.
    env = dict(os.environ)
    if broker_url:
        env["LANTERNA_BROKER"] = broker_url
    return env

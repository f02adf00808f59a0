"""Stopping a virtual node at a safe point, not with a signal.

A Ctrl-C is the node's orderly stop (lamp.app: it saves its energy counters and prints
"stopped"). On the unix port we run, a SIGINT's KeyboardInterrupt is raised from the
signal handler itself, wherever the node is: one that lands inside the garbage
collector leaves the heap locked for good, the save and the "stopped" line fail with
MemoryError and the node exits 1 (seen in about one suite run in three).

So the controller asks instead: it creates a file whose path the node got in
LANTERNA_STOP, and the sim board (lamp.hal.sim.SimHal.mains_ok, sampled every second
by the fault monitor) raises KeyboardInterrupt there, between two statements of a
task, taking the same path as Ctrl-C. A node that has not reached its loop yet (still
booting) is sent SIGINT after a grace period, and killed after the caller's timeout.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ENV = "LANTERNA_STOP"
# The node looks for the file at most every 200 ms of real time; a node that has not
# stopped within this is not in its loop yet.
GRACE_S = 3.0


class StopFile:
    """One node's stop request: ``env()`` goes into its environment, ``ask()`` stops it."""

    def __init__(self, path: Path | None = None) -> None:
        self._tmp: Path | None = None
        if path is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="lanterna-stop-"))
            path = self._tmp / "stop"
        self.path = path
        self.clear()

    def env(self) -> dict[str, str]:
        return {ENV: str(self.path)}

    def clear(self) -> None:
        """Before a (re)start: a request left from the last run must not stop this one."""
        self.path.unlink(missing_ok=True)

    def ask(self) -> None:
        self.path.touch()

    def remove(self) -> None:
        self.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def ask_then_interrupt(proc: subprocess.Popen, stop: StopFile) -> threading.Timer:
    """Ask `proc` to stop; if it is still running after GRACE_S, send it SIGINT.
    Returns the timer (cancel it once the process has ended)."""
    stop.ask()

    def interrupt() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    timer = threading.Timer(GRACE_S, interrupt)
    timer.daemon = True
    timer.start()
    return timer


def stop_all(procs: list[tuple[subprocess.Popen, StopFile]], timeout: float) -> None:
    """Ask every running node to stop, then wait up to `timeout` s in all (SIGINT to a
    node still running after the grace period, SIGKILL to one still running at the end)."""
    running = [(p, s) for p, s in procs if p.poll() is None]
    for _p, s in running:
        s.ask()
    deadline = time.monotonic() + timeout
    grace = time.monotonic() + GRACE_S
    interrupted = False
    for p, _s in running:
        while p.poll() is None:
            now = time.monotonic()
            if now >= deadline:
                p.kill()
                p.wait()
                break
            if not interrupted and now >= grace:
                for q, _t in running:
                    if q.poll() is None:
                        q.send_signal(signal.SIGINT)
                interrupted = True
            try:
                p.wait(min(0.1, max(deadline - now, 0.001)))
            except subprocess.TimeoutExpired:
                pass


INPUTS = ("mains", "relay_welded", "lamp_failed", "day_burner", "lux", "cp_volts")


def inputs_path(stop: Path) -> Path:
    return stop.with_name(stop.name + ".inputs")


def set_inputs(stop: Path, values: dict[str, object]) -> Path:
    """Set a running virtual node's inputs (a failed lamp, lost mains, ...): written
    beside its stop file, taken by the node within a second (lamp.hal.simstop) and
    removed. -> the file written."""
    import json

    from lanterna.files import write_atomic

    bad = sorted(set(values) - set(INPUTS))
    if bad:
        raise ValueError(f"not an input of the sim board: {', '.join(bad)} ({', '.join(INPUTS)})")
    p = inputs_path(stop)
    write_atomic(p, json.dumps(values).encode(), 0o644)
    return p

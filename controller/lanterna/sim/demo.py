"""`make demo` / `lanterna demo`: a virtual district of the three Sharing Cities sites,
end to end, on this machine, with the real parts.

mosquitto on a free loopback port (password file, no anonymous access), 30 lamp posts
(real firmware in MicroPython processes; 10 each in Greenwich, Porta Romana, Baixa) at
time warp, `lanterna serve` ingesting into a fresh store, a schedule pushed to the fleet,
the live fleet status, and an energy report with its chart; the web console
(`lanterna web`) serves the district throughout, with a one-time operator password
printed once. Every step is the CLI a street-lighting team runs, printed before it runs.
Everything started is stopped at the end (with `keep`, at Ctrl-C), on Ctrl-C too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from lanterna.errors import LanternaError
from lanterna.paths import REPO
from lanterna.procs import die_with_parent

SITES = ("greenwich", "porta-romana", "baixa")


def _say(text: str, cyan: bool = False) -> None:
    """A line for the person watching, on stderr (stdout carries the commands' output);
    the commands the demo runs in cyan when stderr is a terminal."""
    if cyan and sys.stderr.isatty():
        text = f"\x1b[36m{text}\x1b[0m"
    print(text, file=sys.stderr, flush=True)


def run_demo(home: Path, nodes_per_site: int, warp: int, seconds: float, keep: bool = False) -> int:
    from lanterna.broker.mosquitto import Mosquitto
    from lanterna.context import write_config

    lanterna = str(Path(sys.executable).with_name("lanterna"))
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    broker = Mosquitto(home / "broker", {"controller": secrets.token_urlsafe(18)})
    write_config(
        home,
        {
            "broker": broker.url,
            "broker_user": "controller",
            "broker_password": broker.users["controller"],
        },
    )
    env = dict(os.environ, LANTERNA_HOME=str(home))
    env.pop("LANTERNA_BROKER", None)
    procs: list[subprocess.Popen] = []
    state = home / "sim-state"

    def step(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        _say("$ lanterna " + " ".join(args), cyan=True)
        r = subprocess.run([lanterna, *args], env=env, text=True, capture_output=True)
        if r.stdout:
            print(r.stdout.rstrip(), flush=True)
        if r.stderr:
            _say(r.stderr.rstrip())
        if check and r.returncode != 0:
            raise LanternaError(f"`lanterna {args[0]}` failed with status {r.returncode}")
        return r

    def spawn(*args: str) -> None:
        _say("$ lanterna " + " ".join(args) + " &", cyan=True)
        log = open(home / f"{args[0]}-{len(procs)}.log", "w")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [lanterna, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        )

    def online() -> int:
        from lanterna.store.db import Store

        with Store(home / "lanterna.db") as s:
            return sum(1 for r in s.status(s.nodes()) if r["online"])

    stop = False

    def on_signal(*_a: object) -> None:
        nonlocal stop
        stop = True

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        total = nodes_per_site * len(SITES)
        runs = []
        from lanterna.broker.mosquitto import free_port

        # Node clocks start this evening at 18:00 UTC (dark in all three cities), with
        # the Greenwich schedule on their flash; the demo then pushes the night saver.
        now = datetime.now(UTC)
        start = now.replace(hour=18, minute=0, second=0, microsecond=0).timestamp()
        examples = REPO / "docs" / "examples"
        for site in SITES:
            args = ["sim", "--nodes", str(nodes_per_site), "--site", site]
            args += ["--state-dir", str(state), "--coap-base-port", str(free_port() - 1)]
            args += ["--time-warp", str(warp), "--tele-s", "60"]
            args += ["--schedule", str(examples / "schedule-greenwich.json")]
            args += ["--start", datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M")]
            step(*args, "--init-only")
            runs.append(args)
        # The broker's password file gets every node's own credentials (and no others).
        creds = json.loads((state / "credentials.json").read_text())
        broker.add_users({node: c["password"] for node, c in creds.items()})
        broker.start()
        _say(f"mosquitto on {broker.url} ({len(creds)} node accounts)")
        t0 = time.time()
        for args in runs:
            spawn(*args)
        spawn("serve", "--report-s", "30")
        deadline = time.monotonic() + 120
        n = 0
        while not stop and time.monotonic() < deadline:
            n = online()
            if n == total:
                break
            time.sleep(0.5)  # waiting for the fleet to come online, bounded
        _say(f"{n} of {total} lamp posts online")
        if n < total:
            raise LanternaError(f"only {n} of {total} nodes came online: see {home}")
        step("schedule", "push", str(examples / "schedule-night-saver.json"), "--all")
        step("dim", "20", "--site", "baixa", "--for", "2h")
        console = _console(step, spawn, procs, home)
        t_end = time.monotonic() + seconds
        while not stop and (keep or time.monotonic() < t_end):
            time.sleep(min(10.0, max(0.0, t_end - time.monotonic())))  # the demo's pace
            if not stop:
                step("status", "--site", "greenwich")
        # Node time ran `warp` times faster than ours since the sims started.
        until = start + (time.time() - t0) * warp
        step(
            "energy",
            "report",
            "--since",
            datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "--until",
            datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "--png",
            str(home / "energy.png"),
        )
        _say(f"chart: {home / 'energy.png'}; store: {home / 'lanterna.db'}")
        if console:
            _say(f"the console was at {console}")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        broker.stop()
        for sig, h in old.items():
            signal.signal(sig, h)
        _say("demo stopped: broker, sims, serve and the console ended")


def _console(step, spawn, procs: list, home: Path) -> str | None:
    """An operator with a one-time password, and `lanterna web` on 127.0.0.1:8080 (or
    any free port when 8080 is taken); its address, once it listens."""
    r = step("user", "add", "operator", "--role", "operator", "--generate")
    password = r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
    for port in (8080, 0) if _port_free(8080) else (0,):
        log = home / f"web-{len(procs)}.log"
        spawn("web", "--listen", f"127.0.0.1:{port}")
        url = _listening(procs[-1], log)
        if url:
            _say(f"console: {url} (sign in as operator, password {password}, shown once)",
                 cyan=True)  # fmt: skip
            return url
    _say(f"the console did not start: see {home}/web-*.log")
    return None


def _listening(p: subprocess.Popen, log: Path) -> str | None:
    """The address `lanterna web` prints once it listens; None if it exits first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        for line in text.splitlines():
            if line.startswith("lanterna web: "):
                return line.split()[2]
        if p.poll() is not None:
            return None
        time.sleep(0.1)  # the console starting, bounded
    return None


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

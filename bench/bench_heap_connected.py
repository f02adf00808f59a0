"""Heap of a connected node over one simulated day, against a real mosquitto.

One virtual lamp post (real firmware from its ROMFS image, every sensor on the device
bus, the EV charge point, MQTT and the CoAP server) runs one day of node time at warp
with telemetry every minute. Through the day it is commanded over MQTT (dim, identify,
a schedule replaced, a config key set: signed, as the controller sends them) and read
over CoAP (/state, /sensors, /evse with libcoap's coap-client).

A run passes when the node published every telemetry period of the day, answered every
command and never logged a MemoryError. Printed, one JSON object: the lowest heap_free
the node reported, the budget of the board under test, whether the day passed in it,
and the least budget (bisected, 2 KiB steps) in which the day passes.

`--code files` flashes the node as a stock MicroPython image must run it: slot a holds
the compiled modules as .mpy files (no ROMFS image) and the loader (firmware/loader.py) is
main.py, so the bytecode lives in the heap and the interpreter gets the budget alone;
`--code romfs` (the default) runs them from the slot's image, held outside the budget as
the pole's partition would be. The JSON says which (`code`).

Figures are for the 64-bit unix port: every object is twice its size on the 32-bit ESP32,
code objects about 1.2 times (docs/firmware.md, "Heap on the pole").
Run: .venv/bin/python bench/bench_heap_connected.py [--board sim] [--warp 720]
     [--code romfs|files] [--budget BYTES] [--no-bisect]
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from observer import Msg, Observer  # noqa: E402  (the tests' controller-side MQTT client)

DAY_S = 86400
COAP_CLIENT = shutil.which("coap-client-notls") or "/usr/bin/coap-client-notls"


def _count(msgs: list[Msg], topic: str) -> int:
    return sum(m.topic == topic for m in msgs)


def _more(topic: str, k: int, msgs: list[Msg]) -> bool:
    return _count(msgs, topic) > k


def files_flash(d: Path) -> None:
    """The node's flash as provisioning writes it for a stock image: slot a in the
    files form, the loader as main.py."""
    from lanterna.device import firmware as fw

    shutil.rmtree(d / "slots" / "a")
    for rel, data in fw.factory_files(fw.cached_build(), fw.firmware_version(), ("files",)).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    shutil.copyfile(fw.firmware_dir() / "loader.py", d / "main.py")


def day(budget: int, warp: int, board: str, tmp: Path, code: str = "romfs") -> dict:
    """One simulated day of one connected node with `budget` bytes of heap."""
    from lanterna.broker.mosquitto import Mosquitto, free_port
    from lanterna.device.firmware import romfs_heap
    from lanterna.sim.district import District, prepare

    broker = Mosquitto(tmp / "broker")
    state = tmp / "state"
    shutil.rmtree(state, ignore_errors=True)
    nodes = prepare(state, 1, "greenwich", broker.url, coap_base_port=free_port() - 1)
    n = nodes[0]
    creds = json.loads((state / "credentials.json").read_text())
    broker.add_user(n.node, creds[n.node]["password"])
    broker.start()
    key = bytes.fromhex(creds[n.node]["key"])
    base = f"lanterna/v1/greenwich/{n.node}/"
    obs = Observer(broker, [base + "#"], client_id="bench-controller")
    d = District(nodes, warp=warp, board=board)
    d.scale_heap = False  # the budget bisected is this port's heap itself
    d.board["heap"] = budget
    if code == "files":
        files_flash(n.dir)
        # The district adds its image to every node's heap; a files node has none in RAM.
        d.board["heap"] = budget - romfs_heap(0, d.image)
    # A fixed start (2026-11-25 00:00Z): the same day, the same nights, every run.
    d.extra_args = ["--start", "1795564800"]
    sent = 0
    errors: list[str] = []
    try:
        d.start()
        if not obs.until(lambda m: _count(m, base + "tele"), 60):
            errors.append("no telemetry")
        hours = 0
        deadline = time.monotonic() + 3 * DAY_S / warp + 60
        while not errors and hours < 24 and d.alive():
            if time.monotonic() > deadline:
                errors.append("the day did not end in time: the node stalled")
                break
            if "MemoryError" in (n.dir / "node.log").read_text():
                errors.append("MemoryError")  # failed: no need to wait for the rest
                break
            tele = obs.json(base + "tele")
            up = tele[-1]["uptime_s"] if tele else 0
            if up >= (hours + 1) * 3600:
                hours += 1
                cmds = [("dim", {"level": 20 + hours, "fade_s": 2}), ("identify", {"seconds": 3})]
                if hours % 6 == 0:
                    cmds.append(("config_set", {"key": "log_level", "value": "info"}))
                for cmd, args in cmds:
                    sent += 1
                    obs.command(base + "cmd", key, n.node, cmd, args, sent)
                for path in ("state", "sensors", "evse"):
                    subprocess.run(
                        [
                            COAP_CLIENT,
                            "-m",
                            "get",
                            "-B",
                            "5",
                            f"coap://127.0.0.1:{n.coap_port}/{path}",
                        ],
                        capture_output=True,
                        timeout=10,
                    )
            else:
                obs.until(functools.partial(_more, base + "tele", len(tele)), 10)
        obs.until(lambda m: _count(m, base + "ack") >= sent, 30)
    finally:
        # The day's log is read before the stop: a node still booting is stopped by a
        # SIGINT (lanterna.sim.stop), which this unix port raises at once wherever the
        # node is; one that lands while the collector holds the heap ends in
        # "MemoryError: ... heap is locked", which is the stop's, not the day's
        # (counted apart as memory_errors_at_stop).
        day_log = (n.dir / "node.log").read_text() if (n.dir / "node.log").exists() else ""
        d.stop()
        obs.stop()
        broker.stop()
    log = (n.dir / "node.log").read_text()
    stop_log = log[len(day_log) :]
    log = day_log
    tele = obs.json(base + "tele")
    acks = obs.json(base + "ack")
    return {
        "code": code,
        "budget": budget,
        "hours": hours,
        "tele": len(tele),
        "acks": len(acks),
        "commands": sent,
        "memory_errors": log.count("MemoryError"),
        "memory_errors_at_stop": stop_log.count("MemoryError"),
        "min_heap_free": min((t["heap_free"] for t in tele), default=None),
        "passed": not errors and hours == 24 and len(acks) >= sent and "MemoryError" not in log,
        "errors": errors,
        # Where the first one struck: the traceback the node logged, for the diet.
        "first_memory_error": _traceback(log, "MemoryError"),
    }


def _traceback(log: str, what: str) -> list[str]:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if what in line:
            start = i
            while start > 0 and not lines[start].startswith("Traceback"):
                start -= 1
            return lines[max(start, i - 12) : i + 1]
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="sim")
    ap.add_argument("--warp", type=int, default=720)
    ap.add_argument("--no-bisect", action="store_true")
    ap.add_argument("--budget", type=int, help="bytes (default: the board's)")
    ap.add_argument("--code", choices=("romfs", "files"), default="romfs")
    a = ap.parse_args()
    from lamp.board import load
    from lanterna.paths import board_file

    budget = a.budget or load(str(board_file(a.board)))["heap"]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        t0 = time.monotonic()
        at_budget = day(budget, a.warp, a.board, tmp, a.code)
        out = {"board": a.board, "warp": a.warp, "code": a.code, "at_budget": at_budget}
        if not a.no_bisect:
            lo, hi = 64 * 1024, 2 * budget  # fails at lo (assumed), passes at hi (checked)
            if at_budget["passed"]:
                hi = budget
            while hi - lo > 2048:
                mid = (lo + hi) // 2 // 1024 * 1024
                r = day(mid, a.warp, a.board, tmp, a.code)
                lo, hi = (lo, mid) if r["passed"] else (mid, hi)
            out["least_budget"] = hi
        out["seconds"] = round(time.monotonic() - t0, 1)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

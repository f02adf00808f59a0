"""Boot of a virtual lamp post: time to its first lamp level, and the least heap it needs.

Prints one JSON object. The baseline is the bare interpreter start (`micropython -c
pass`) measured in the same run, so the figure that matters is the difference.
Run: .venv/bin/python bench/bench_node_boot.py  (or `make bench`)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MP = str(BIN / "micropython")
RUNS = 7


from lanterna.paths import ROMBOOT  # noqa: E402


def firmware() -> Path:
    """The compiled firmware with its ROMFS image: the node boots from it, as the pole does."""
    from lanterna.device.firmware import cached_build

    return cached_build()


MPY = firmware()


_BUS: list = []  # the sensor chips (lanterna.sim.simbus), started once in main()


def _env(root: Path = MPY) -> dict[str, str]:
    from lanterna.device.firmware import ROMFS_NAME

    env = dict(os.environ, MICROPYPATH=".frozen", LANTERNA_ROMFS=str(root / ROMFS_NAME))
    if _BUS:
        env["LANTERNA_SIMBUS"] = _BUS[0].address
    return env


def node_args(heap: str, root: Path) -> list[str]:
    """The virtual node with `heap` ("110K") for itself; the image comes on top."""
    from lamp.board import parse_heap
    from lanterna.device.firmware import ROMFS_NAME, romfs_heap

    return [
        MP,
        "-X",
        f"heapsize={romfs_heap(parse_heap(heap), root / ROMFS_NAME)}",
        str(ROMBOOT),
        "--board",
        str(REPO / "boards" / "sim.json"),
    ]


def time_to_failsafe(heap: str = "110K", root: Path = MPY, extra: tuple = ()) -> float | None:
    """Seconds from spawn to the 'level ... failsafe' line; None if it never came."""
    t0 = time.perf_counter()
    flash = tempfile.mkdtemp()  # the node's flash: nothing it writes lands in the repo
    p = subprocess.Popen(
        node_args(heap, root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(root),
        cwd=flash,
    )
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if " level " in line:
                return time.perf_counter() - t0
        return None
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(flash, ignore_errors=True)


def interpreter_start() -> float:
    t0 = time.perf_counter()
    subprocess.run([MP, "-c", "pass"], check=True, env=_env())
    return time.perf_counter() - t0


def min_heap_kib(extra: tuple = (), lo: int = 16, hi: int = 160) -> int:
    """Smallest heap (KiB) in which the node boots and sets its first level."""
    while lo < hi:
        mid = (lo + hi) // 2
        if time_to_failsafe(f"{mid}K", MPY, extra) is not None:
            hi = mid
        else:
            lo = mid + 1
    return lo


def main() -> None:
    from lanterna.sim.simbus import SimBus

    _BUS.append(SimBus().start())
    try:
        run()
    finally:
        _BUS[0].stop()


def run() -> None:
    boot = [t for t in (time_to_failsafe() for _ in range(RUNS)) if t is not None]
    if not boot:
        sys.exit("the node did not boot in 110K")
    base = [interpreter_start() for _ in range(RUNS)]
    result = {
        "bench": "node_boot",
        "runs": RUNS,
        "time_to_first_level_s": round(statistics.median(boot), 4),
        "baseline_interpreter_start_s": round(statistics.median(base), 4),
        "firmware_overhead_s": round(statistics.median(boot) - statistics.median(base), 4),
        # The heap the node needs besides its ROMFS image, on the 64-bit unix port, where
        # objects are larger than on the 32-bit ESP32: a pessimistic figure. The sim
        # board's sensor models share this heap (on the pole they are chips). With a
        # schedule installed at boot the validator and the sun maths join in.
        "min_heap_to_boot_kib": min_heap_kib(),
        "min_heap_to_boot_with_schedule_kib": min_heap_kib(
            ("--schedule", str(REPO / "docs" / "examples" / "schedule-greenwich.json"))
        ),
        "budget_kib": 110,
        "goal": "first lamp level within 1 s of start",
        "goal_met": statistics.median(boot) < 1.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

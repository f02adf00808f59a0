"""Heap of the virtual node with every sensor and the EV charge point active.

Runs bench/heap_node.py (boot, ten minutes of node time at warp with telemetry every
minute, every sensor disconnected and repaired) in the MicroPython unix port from the
firmware's ROMFS image, at the esp32-devkitc budget, and prints one JSON object: the
heap after boot, the live peak, the allocation peak and the least budget in which the
workload completes. Baseline, measured in the same run: the same node with no sensor
fitted (config sensors.fitted = []), so `sensors_cost` is what the sensors add.
Figures exclude the image (flash on the pole) and the sensor chips (their models run in
this process, lanterna.sim.simbus, as the chips sit outside the pole's heap); on the 64-bit
port every object is larger than on the 32-bit ESP32.
`--code files` runs the same node from the compiled modules as .mpy files on the
filesystem instead (what a stock MicroPython image without ROMFS must do): the bytecode
then lives in the heap, so the figures include it and the interpreter gets the budget
alone. The JSON says which (`code`).
Run: .venv/bin/python bench/bench_heap.py [--code romfs|files]  (or `make bench`)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MP = str(Path(sys.executable).with_name("micropython"))
BUDGET = 110 * 1024
WARP = 600


def image(tmp: Path, code: str = "romfs") -> Path:
    """The firmware's ROMFS image with the workload compiled into it; with code "files",
    a directory of the same .mpy files instead."""
    from lanterna.device.firmware import cached_build, mpy_cross, romfs_image

    fw = cached_build()
    mpy_cross(REPO / "bench" / "heap_node.py", tmp / "heap_node.mpy")
    if code == "files":
        out = tmp / "files"
        shutil.copytree(fw / "lamp", out / "lamp")
        shutil.copyfile(tmp / "heap_node.mpy", out / "heap_node.mpy")
        return out
    out = tmp / "bench.romfs"
    out.write_bytes(romfs_image(fw, {"heap_node.mpy": (tmp / "heap_node.mpy").read_bytes()}))
    return out


def run(img: Path, budget: int, cfg: dict, tmp: Path) -> dict | None:
    from lanterna.device.firmware import romfs_heap

    root = Path(tempfile.mkdtemp(dir=tmp))
    (root / "config.json").write_text(json.dumps(cfg))
    args = [
        "--board",
        str(REPO / "boards" / "sim.json"),
        "--config",
        str(root / "config.json"),
        "--schedule",
        str(REPO / "docs" / "examples" / "schedule-greenwich.json"),
        "--warp",
        str(WARP),
        "--start",
        "1795600000",
    ]
    from lanterna.sim.simbus import SimBus

    code = "import os,romboot;romboot.mount(os.getenv('LANTERNA_ROMFS'));import heap_node"
    heap = romfs_heap(budget, img) if img.is_file() else budget
    if img.is_dir():  # code from files: the modules' bytecode is the node's heap too
        code = f"import sys;sys.path.insert(0,{str(img)!r});import heap_node"
    bus = SimBus().start()  # the sensor chips, outside the node's heap as on the pole
    env = dict(
        os.environ,
        MICROPYPATH=f"{REPO / 'controller' / 'lanterna' / 'sim' / 'mp'}:.frozen",
        LANTERNA_ROMFS=str(img),
        LANTERNA_SIMBUS=bus.address,
        HEAP_ARGS=json.dumps(args),
    )
    try:
        p = subprocess.run(
            [MP, "-X", f"heapsize={heap}", "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=120,
        )
    finally:
        bus.stop()
    for line in p.stdout.splitlines():
        if line.startswith("HEAP ") and p.returncode == 0:
            return json.loads(line[5:])
    return None


def least_budget(img: Path, cfg: dict, tmp: Path, lo: int = 32, hi: int = 160) -> int:
    """Smallest budget (KiB) in which the whole workload completes."""
    while lo < hi:
        mid = (lo + hi) // 2
        if run(img, mid * 1024, cfg, tmp) is not None:
            hi = mid
        else:
            lo = mid + 1
    return lo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", choices=("romfs", "files"), default="romfs")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "firmware"))
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        img = image(tmp, a.code)
        full = {"tele_s": 60, "log_level": "warn"}
        bare = dict(full, sensors={"fitted": []})
        with_sensors = run(img, BUDGET, full, tmp)
        without = run(img, BUDGET, bare, tmp)
        if (with_sensors is None or without is None) and a.code == "romfs":
            sys.exit("the node did not complete the workload in 110K")
        hi = 160 if a.code == "romfs" else 256  # from files the bytecode is heap too
        result = {
            "bench": "heap",
            "code": a.code,
            "budget_bytes": BUDGET,
            "image_bytes": img.stat().st_size if img.is_file() else None,
            "all_sensors": with_sensors,
            "baseline_no_sensors": without,
            "sensors_cost_live_bytes": with_sensors["live_max"] - without["live_max"]
            if with_sensors and without
            else None,
            "least_budget_kib": least_budget(img, full, tmp, hi=hi),
            "least_budget_no_sensors_kib": least_budget(img, bare, tmp, hi=hi),
            "goal": "live peak with all sensors active within the esp32-devkitc budget",
            "goal_met": bool(with_sensors) and with_sensors["alloc_peak"] <= BUDGET,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

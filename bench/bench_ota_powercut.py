"""Power cuts during an OTA install: 1,000 trials, the count of bricked nodes (must be 0).

Each trial is tests/test_ota_install.py's `powercut_trial`: a virtual node (slot a holds
1.0.0) installs a small signed bundle inside MicroPython under the pole's heap budget and
is killed with SIGKILL 1-4 times at random points (mid-download, mid-file, at every step
of the commit and the switch), restarted each time from `Install(...).offset`; after every
kill its flash must boot a complete, verified slot. A node that would not is "bricked".
Also measured, on the real firmware bundle: the least heap one install runs in (-X
heapsize bisected to 1 KB, the check's own buffers included), the peak gc.mem_alloc()
above the start during it, and the .mpy size of lamp.ota's installer (install, tar,
manifest).
Printed, one JSON object. Run: .venv/bin/python bench/bench_ota_powercut.py [--trials 1000]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "firmware"), str(REPO / "controller")]

import test_ota_install as t  # noqa: E402

import mpharness  # noqa: E402
from lanterna.device.firmware import mpy_cross  # noqa: E402
from lanterna.ota import bundle as ob  # noqa: E402
from lanterna.ota.keys import keygen, load_private  # noqa: E402

INSTALLER = ("install", "tar", "manifest")


def least_heap(tmp: Path, bundle: Path, key_file: Path) -> tuple[int, int]:
    """-> (least -X heapsize budget in bytes an install passes under, its mem_alloc peak)."""

    def run(heap: int) -> dict | None:
        root = t.node_root(tmp, f"heap{heap}")
        cases = tmp / f"heap{heap}.jsonl"
        case = {"what": "real", "bundle": str(bundle), "root": f"{root}/", "seed": 1,
                "chunk": 1024}  # fmt: skip
        cases.write_text(json.dumps(case) + "\n")
        env = {"OTA_CASES": str(cases), "OTA_KEY": str(key_file)}
        proc = mpharness.run_firmware(t.CHECK, "check_cases", heap=heap, extra_env=env)
        for line in proc.stdout.splitlines():
            if line.startswith("OTA ") and proc.returncode == 0:
                out = json.loads(line[4:])
                return out if out["result"] == 1 else None
        return None

    lo, hi = 8 * 1024, mpharness.board_heap()
    top = run(hi)
    assert top is not None, "the install fails under the board's own budget"
    while hi - lo > 1024:
        mid = (lo + hi) // 2
        if run(mid) is None:
            lo = mid
        else:
            hi = mid
    return hi, top["heap"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanterna-ota-pc-") as d:
        tmp = Path(d)
        keygen(tmp / "key", False)
        key = load_private(tmp / "key" / ob.PRIVATE_NAME)
        n = key.public_key().public_numbers().n.to_bytes(ob.SIG_BYTES, "big")
        key_file = tmp / "n.hex"
        key_file.write_text(n.hex())
        bundle = tmp / "pc.ota"
        bundle.write_bytes(t.small_bundle(key, "1.1.0", romfs=9000))
        real = ob.build(REPO / "firmware", tmp / "real.ota", "1.2.3", key, boards=["sim"])
        heap, peak = least_heap(tmp, real.path, key_file)
        mpy_bytes = 0
        for part in INSTALLER:  # the installer and the stream and manifest checks it loads
            mpy_cross(REPO / f"firmware/lamp/ota/{part}.py", tmp / f"{part}.mpy")
            mpy_bytes += (tmp / f"{part}.mpy").stat().st_size
        pc_bytes = bundle.stat().st_size

        t0 = time.monotonic()
        bricked, kills, starts, resumed = [], 0, 0, 0
        by: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        for i in range(args.trials):
            root = t.node_root(tmp, f"pc{i}")
            r = t.powercut_trial(root, bundle, key_file, args.seed * 1_000_003 + i, "1.1.0")
            kills, starts = kills + r["kills"], starts + r["starts"]
            resumed += r["resumed"]
            for kind, (k, miss) in r["by"].items():
                by[kind][0] += k
                by[kind][1] += miss
            if r["bricked"]:
                bricked.append({"trial": i, "why": r["why"]})
            shutil.rmtree(root)
        elapsed = time.monotonic() - t0
    print(json.dumps({
        "trials": args.trials,
        "bricked": len(bricked),
        "bricked_trials": bricked[:10],
        "kills": kills,
        "kills_by_point": {k: v[0] for k, v in sorted(by.items())},
        "late_kills_missed": sum(v[1] for v in by.values()),
        "installer_starts": starts,
        "resumed_mid_download": resumed,
        "seconds": round(elapsed, 1),
        "powercut_bundle_bytes": pc_bytes,
        "real_bundle_bytes": real.bytes,
        "install_least_heap_bytes": heap,
        "install_mem_alloc_peak_bytes": peak,
        "ota_mpy_bytes": mpy_bytes,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

"""Schedule evaluation on the node: cost per evaluation and heap over 30 nights.

Runs inside MicroPython under the esp32-devkitc heap budget (110K). Prints one JSON
object. Baseline, measured in the same run: a dict lookup loop of the same count, so the
figure is comparable across machines.
Run: .venv/bin/python bench/bench_schedule.py  (or `make bench`)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MP = str(Path(sys.executable).with_name("micropython"))

SCRIPT = r"""
import gc, json, time
from lamp import clock, tz
from lamp.schedule import Plan, parse
with open(%(example)r) as f:
    sched = parse(json.load(f))
zone = tz.parse("GMT0BST,M3.5.0/1,M10.5.0")
plan = Plan(sched, zone, 51.4826, 0.0077)
start = zone.utc(clock.days_from_civil(2026, 11, 25) * 86400 + 12 * 3600)
N = 2000
# warm: fills the night cache
plan.level_at(start)
t0 = time.ticks_us()
for i in range(N):
    plan.level_at(start + i)
cached_us = time.ticks_diff(time.ticks_us(), t0) / N
d = {1: 2}
t0 = time.ticks_us()
for i in range(N):
    d.get(1)
base_us = time.ticks_diff(time.ticks_us(), t0) / N
# A new night each call: the sun maths and calendar (uncached).
t0 = time.ticks_us()
for i in range(60):
    Plan(sched, zone, 51.4826, 0.0077).night(20000 + i)
night_us = time.ticks_diff(time.ticks_us(), t0) / 60
# 30 nights in 5-minute steps, with next_change as the node does: heap per night.
gc.collect()
heaps = []
t = start
for night in range(30):
    end = t + 86400
    while t < end:
        plan.level_at(t)
        plan.next_change(t)
        t += 300
    gc.collect()
    heaps.append(gc.mem_alloc())
print(json.dumps({"eval_cached_us": cached_us, "dict_lookup_us": base_us,
                  "night_uncached_us": night_us, "heap_alloc_per_night": heaps}))
"""


def run(heap: str) -> subprocess.CompletedProcess[str]:
    example = str(REPO / "docs" / "examples" / "schedule-greenwich.json")
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'firmware'}:.frozen")
    return subprocess.run(
        [MP, "-X", f"heapsize={heap}", "-c", SCRIPT % {"example": example}],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def min_heap_kib(lo: int = 8, hi: int = 110) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        if run(f"{mid}K").returncode == 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def main() -> None:
    proc = run("110K")
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    r = json.loads(proc.stdout)
    heaps = r.pop("heap_alloc_per_night")
    r.update(
        bench="schedule",
        heap_alloc_first_night=heaps[0],
        heap_alloc_last_night=heaps[-1],
        heap_growth_bytes=heaps[-1] - heaps[1],
        min_heap_kib_30_nights=min_heap_kib(),
        budget_kib=110,
        eval_vs_dict_lookup=round(r["eval_cached_us"] / r["dict_lookup_us"], 1),
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()

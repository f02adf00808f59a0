"""The heap a simulated pole gets on this 64-bit unix port (docs/boards.md, "Heap on this
port").

A board file's ``heap`` is what the pole's 32-bit MicroPython gives the application. The
same firmware needs more here: every object is made of 8-byte pointers instead of 4. A
32-bit build of this unix port (v1.29-preview, the configuration of the 64-bit one) ran
the connected node's day (bench/bench_heap_connected.py, code from ROMFS) in a least
budget of 79 KiB against 129 KiB on the 64-bit port: a ratio of 0.61 (issue 14, measured
outside the suite). A virtual node, a district's node or a virtual board therefore runs
with the board's budget divided by that ratio, so an allocation that would not fit the
pole fails here too, and one that would fit does not fail for the port's pointers alone.

The firmware tests do not scale: they run under the esp32-devkitc figure as it is
(tests/mpharness.py), the stricter test.
"""

from __future__ import annotations

POLE_RATIO = 0.61  # 32-bit / 64-bit least heap of the connected day (79 / 129 KiB)


def pole_heap(budget: int) -> int:
    """The 64-bit heap that stands for `budget` bytes on the pole (16-byte blocks)."""
    return int(budget / POLE_RATIO) // 16 * 16

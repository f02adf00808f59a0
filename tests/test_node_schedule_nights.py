"""A virtual node at time warp follows its schedule through 30 nights, like the preview."""

from __future__ import annotations

import json
import re
import signal
from datetime import date, datetime, timedelta

from lanterna.fleet import schedules

NIGHTS = 30
WARP = 43200  # half a day a second: 30 nights in a minute or two
# At warp node time cannot run past a step (lamp.clock): however late a busy host runs
# the node, each change lands on its own second of node time.
TOLERANCE_S = 0
# Node time waits for the host, so a loaded machine only makes the nights take longer.
TIMEOUT_S = 900
LEVEL = re.compile(r"^(\S+) level (\d+) (\w+)$")
NIGHT = re.compile(r"^(\S+) night (\d+) heap alloc (\d+) free (\d+)$")


def test_thirty_nights_follow_the_preview_without_heap_growth(spawn, lanterna_cmd, repo, tmp_path):
    example = repo / "docs" / "examples" / "schedule-greenwich.json"
    # The test is about the lamp: no sensor fitted (their bus round trips would only make
    # the nights slower), telemetry hourly. The sensors have their own tests
    # (test_node_sensors, test_node_telemetry, bench_heap).
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"sensors": {"fitted": []}, "tele_s": 3600}))
    node = spawn(
        [
            *lanterna_cmd,
            "node",
            "run",
            "--config",
            str(cfg),
            "--schedule",
            str(example),
            "--lat",
            "51.4826",
            "--lon",
            "0.0077",
            "--tz",
            "Europe/London",
            "--start",
            "2026-11-25T12:00:30",
            "--warp",
            str(WARP),
            "--debug",
            "--root",
            str(tmp_path / "flash"),
        ]
    )
    first = date(2026, 11, 25)
    last_night = (first - date(1970, 1, 1)).days + NIGHTS
    node.wait_for(f" night {last_night} ", timeout=TIMEOUT_S)
    # Ended with SIGTERM: a Ctrl-C that lands in the middle of a collection can crash the
    # unix port's interpreter at this warp (seen about once in twenty); Ctrl-C itself is
    # tested in test_node_run.py.
    node.stop(signal.SIGTERM)

    changes = [
        (datetime.fromisoformat(m[1]), int(m[2]), m[3]) for m in map(LEVEL.match, node.lines) if m
    ]
    heaps = [int(m[3]) for m in map(NIGHT.match, node.lines) if m]
    assert changes and changes[0][2] == "schedule"

    _, sched = schedules.load(example)
    expected = []
    for n in range(NIGHTS):
        p = schedules.preview(sched, first + timedelta(days=n), 51.4826, 0.0077, "Europe/London")
        expected += [(datetime.fromisoformat(t["time"]), t["level"]) for t in p.transitions]
    seen = [(t, lvl) for t, lvl, _src in changes[1:]]  # [0] is the level at start
    assert [lvl for _, lvl in seen[: len(expected)]] == [lvl for _, lvl in expected]
    for (got_t, _), (want_t, _) in zip(seen, expected, strict=False):
        late = (got_t - want_t).total_seconds()  # node time, from the node's own line
        assert 0 <= late <= TOLERANCE_S, (got_t, want_t)
    # No heap growth night over night (after the first nights fill the caches). What is
    # alive at the instant of a night's sample (a sensor poll, a telemetry window) varies
    # by a few KB; a leak shows as a trend: the last ten nights against nights 4-13.
    assert len(heaps) >= NIGHTS
    early, late = heaps[3:13], heaps[-10:]
    assert sum(late) / 10 - sum(early) / 10 < 1024, heaps
    assert max(heaps[3:]) - min(heaps[3:]) < 8192, heaps

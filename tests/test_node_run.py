"""`make node` / `lanterna node run`: one virtual lamp post on the unix port."""

from __future__ import annotations

import json
import re
import signal


def test_virtual_node_drives_failsafe_and_stops_on_ctrl_c(spawn, lanterna_cmd, tmp_path):
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"node": "gw-001", "site": "greenwich", "failsafe_level": 90}))
    node = spawn(
        [
            *lanterna_cmd,
            "node",
            "run",
            "--board",
            "sim",
            "--config",
            str(cfg),
            "--root",
            str(tmp_path / "flash"),
        ]
    )
    node.wait_for("node gw-001 site greenwich board sim")
    line = node.wait_for(" failsafe")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d level 90 failsafe", line.strip()
    )
    assert node.stop(signal.SIGINT) == 0
    assert node.lines[-1].endswith(" stopped")


def test_virtual_node_refuses_a_bad_config(lanterna_cmd, tmp_path, spawn):
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"failsafe_level": 150}))
    node = spawn([*lanterna_cmd, "node", "run", "--config", str(cfg)])
    assert node.p.wait(timeout=30) == 1
    node.wait_for("error: config: failsafe_level: 150 not a number in 0..100")


def test_virtual_node_needs_a_sim_board(lanterna_cmd, spawn):
    node = spawn([*lanterna_cmd, "node", "run", "--board", "esp32-devkitc"])
    assert node.p.wait(timeout=30) == 1
    node.wait_for("a virtual node needs a sim board")


def test_a_killed_node_run_leaves_no_node_process_behind(spawn, lanterna_cmd, tmp_path):
    import time
    from pathlib import Path

    node = spawn([*lanterna_cmd, "node", "run", "--root", str(tmp_path / "flash")])
    node.wait_for(" level ")
    children = [
        int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == node.p.pid
    ]
    assert children, "the node process was not found"
    node.p.kill()  # SIGKILL: no chance to clean up
    node.p.wait()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{c}").exists() and _ppid(Path(f"/proc/{c}")) != 0 for c in children):
        assert time.monotonic() < deadline, "the node outlived `lanterna node run`"
        time.sleep(0.05)  # polling /proc for the exit, bounded by the deadline


def _ppid(proc) -> int:  # type: ignore[no-untyped-def]
    """Parent pid of /proc/PID, 0 once gone (or a zombie nobody waits for is reaped)."""
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return 0
    state = stat.rsplit(")", 1)[1].split()[0]
    return 0 if state == "Z" else int(stat.rsplit(")", 1)[1].split()[1])

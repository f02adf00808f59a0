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

"""A virtual node's clock: NTP from a real SNTP server corrects it, and the lamp takes the
level for the corrected time at once (a state, not an edge)."""

from __future__ import annotations

import json

from sntp import DELTA, good

SCHEDULE = {
    "version": 1,
    "id": "t",
    "profiles": {
        "p": [
            {"at": "sunset", "level": 100},
            {"at": "22:30", "level": 70},
            {"at": "sunrise", "level": 0},
        ]
    },
    "calendar": [{"profile": "p"}],
}
NIGHT_2300_UTC = 1795647600  # 2026-11-25T23:00:00Z: 70 % in Greenwich


def test_ntp_correction_gives_the_right_level_at_once(spawn, lanterna_cmd, tmp_path, responder):
    responder.behaviour = lambda req: good(req, xmit=NIGHT_2300_UTC + DELTA)
    sched = tmp_path / "s.json"
    sched.write_text(json.dumps(SCHEDULE))
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"ntp": [f"127.0.0.1:{responder.port}"]}))
    node = spawn(
        [
            *lanterna_cmd,
            "node",
            "run",
            "--config",
            str(cfg),
            "--schedule",
            str(sched),
            "--start",
            "2026-11-25T12:00:00",
            "--root",
            str(tmp_path / "flash"),
        ]
    )
    node.wait_for("clock set")  # the sim trusts its start time
    first = node.wait_for(" level ")
    assert first.endswith(" level 0 schedule"), first  # noon
    line = node.wait_for(" level 70 ")
    assert line.startswith("2026-11-25T23:00"), line  # set by NTP, not by waiting
    assert responder.requests


def test_unreachable_ntp_server_keeps_the_lamp_on_its_schedule(
    spawn, lanterna_cmd, tmp_path, responder
):
    responder.behaviour = lambda req: None  # silent
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"ntp": [f"127.0.0.1:{responder.port}"], "failsafe_level": 90}))
    node = spawn(
        [*lanterna_cmd, "node", "run", "--config", str(cfg), "--root", str(tmp_path / "flash")]
    )
    node.wait_for(" level 90 failsafe")
    assert responder.got_request.wait(10)
    node.wait_for("ntp: ", timeout=30)  # the timeout is reported, the node carries on
    assert node.p.poll() is None  # still running: the fixture stops it

"""The virtual node on the sim board runs every sensor and its EV charge point from the
start and reports them in its telemetry, with units, in the documented shape."""

from __future__ import annotations

import json
import signal

FIELDS = {
    "bme280": {"temp_x10": "degC", "rh_x10": "%", "pressure_x10": "hPa"},
    "bh1750": {"lux_x10": "lux"},
    "scd4x": {"co2": "ppm", "temp_x10": "degC", "rh_x10": "%"},
    "pms5003": {"pm1": "ug/m3", "pm2_5": "ug/m3", "pm10": "ug/m3"},
}
# Waits for the node's lines (a first run builds the firmware); generous for a loaded
# machine, which only makes them come later.
TIMEOUT_S = 120


def test_virtual_node_reports_every_sensor_and_the_charge_point(spawn, lanterna_cmd, tmp_path):
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"tele_s": 60, "log_level": "warn"}))
    node = spawn(
        [
            *lanterna_cmd,
            "node",
            "run",
            "--config",
            str(cfg),
            "--start",
            "2026-11-25T12:00:00",
            "--warp",
            "600",
            "--root",
            str(tmp_path / "flash"),
        ]
    )
    status = node.wait_for(" event evse_status ", timeout=TIMEOUT_S)
    notification = json.loads(status.split(" event evse_status ", 1)[1])
    # Settled after the debounce: three samples, at this warp a host millisecond (600 ms
    # of node time) each. Node time, the node's own: a busy host cannot stretch it
    # (lamp.clock), nor the node's start (the boot before its first wait takes none).
    assert notification.pop("timestamp").startswith("2026-11-25T12:00:0"), notification
    assert notification == {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    node.wait_for(" tele ", timeout=TIMEOUT_S)
    line = node.wait_for(" tele ", timeout=TIMEOUT_S, start=len(node.lines))  # a full window
    node.stop(signal.SIGTERM)
    tele = json.loads(line.split(" tele ", 1)[1])
    assert tele["v"] == 1 and tele["source"] == "failsafe"  # no schedule: light the street
    assert set(tele["sensors"]) == set(FIELDS)
    for name, fields in FIELDS.items():
        got = tele["sensors"][name]
        assert got["fault"] is None, (name, got)
        for field, unit in fields.items():
            lo, mean, hi, count = got[field]
            # 12 polls in a 60 s window; at this warp the loop may fit fewer
            assert tele["units"][field] == unit and count >= 6, (name, field, got[field])
            assert lo <= mean <= hi, (name, field, got[field])
    assert 80 <= tele["sensors"]["bme280"]["temp_x10"][1] <= 160  # the model's 8..16 degC
    assert tele["evse"]["state"] == "A" and tele["evse"]["status"] == "Available"
    assert tele["energy"]["kwh"] >= 0 and tele["heap_free"] > 0
    assert not [s for s in node.lines if " E " in s or "Traceback" in s], node.lines

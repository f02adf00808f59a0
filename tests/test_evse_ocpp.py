"""The charge point's StatusNotification payloads against the OCPP 1.6 JSON schema.

tests/firmware/check_evse.py drives lamp.evse through a scripted plug-in/charge/unplug
day inside MicroPython and prints every event; each StatusNotification is validated here
with jsonschema against the schema the `ocpp` package ships.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema

from mpharness import run_firmware

CHECKER = Path(__file__).parent / "firmware" / "check_evse.py"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _events() -> list[tuple[str, dict]]:
    proc = run_firmware(CHECKER, "scenario")
    assert proc.returncode == 0 and "MPRUNNER-PASS" in proc.stdout, proc.stdout + proc.stderr
    out = []
    for line in proc.stdout.splitlines():
        if line.startswith("EVSE-EVENT "):
            _, name, payload = line.split(" ", 2)
            out.append((name, json.loads(payload)))
    return out


def test_every_status_notification_is_valid_ocpp_16():
    schema = json.loads(
        resources.files("ocpp.v16.schemas").joinpath("StatusNotification.json").read_text()
    )
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    payloads = [p for name, p in _events() if name == "evse_status"]
    invalid = [(p, e.message) for p in payloads for e in validator.iter_errors(p)]
    # "date-time" is only checked when rfc3339-validator is installed: check it here too.
    invalid += [(p, "timestamp") for p in payloads if not ISO_UTC.match(p["timestamp"])]
    assert len(payloads) > 0
    assert invalid == []


def test_a_scripted_day_gives_the_expected_status_sequence_and_sessions():
    events = _events()
    statuses = [(p["status"], p["errorCode"]) for name, p in events if name == "evse_status"]
    assert statuses == [
        ("Available", "NoError"),
        ("Preparing", "NoError"),  # plugged in
        ("Charging", "NoError"),
        ("SuspendedEV", "NoError"),  # the car paused
        ("Charging", "NoError"),  # C, then D: still Charging
        ("Available", "NoError"),  # unplugged
        ("Preparing", "NoError"),
        ("Charging", "NoError"),
        ("SuspendedEV", "NoError"),
        ("Finishing", "NoError"),  # idle_stop_s ended the session, cable still in
        ("Available", "NoError"),
        ("Faulted", "EVCommunicationError"),  # E: pilot shorted
        ("Available", "NoError"),
        ("Unavailable", "NoError"),  # F: the charger says not available
        ("Faulted", "OtherError"),  # a level in no band
        ("Available", "NoError"),
    ]
    sessions = [(name, p) for name, p in events if name.startswith("ev_session")]
    assert [(n, p["session"]) for n, p in sessions] == [
        ("ev_session_start", 1),
        ("ev_session_stop", 1),
        ("ev_session_start", 2),
        ("ev_session_stop", 2),
    ]
    first, second = sessions[1][1], sessions[3][1]
    # 2 impulses/s at 1000 imp/kWh (7.2 kW) over 720 s in C/D is 1440 Wh, less the impulse
    # during the 0.3 s debounce before the session started; 600 + 60 + 60 + 60 s long.
    assert (first["wh"], first["kwh"], first["duration_s"]) == (1439, 1.439, 780)
    assert first["reason"] == "EVDisconnected" and first["meter_wh"] == 1440
    # 120 s charging, then idle_stop_s (120 s) in B.
    assert (second["wh"], second["duration_s"], second["reason"]) == (239, 240, "Other")

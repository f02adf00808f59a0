"""The wire contract's registries on the controller's side (docs/protocol.md).

Written here on their own, not imported from the node's ``lamp.numbers``: the tests hold
the two equal (tests/test_wire_contract.py) and the JSON schemas to both, so a name or a
code changed on one side only fails a test instead of passing unnoticed.
"""

from __future__ import annotations

SCHEMA = 1  # the "v" of every payload

# Commands (an envelope's "cmd") and the error codes of a failed ack.
COMMANDS = ("dim", "schedule", "config_set", "reboot", "identify", "ota")
ERRORS = (
    "malformed",
    "bad_mac",
    "replay",
    "wrong_node",
    "unknown_command",
    "bad_args",
    "failed",
)

# Events (an event payload's "event"): lamp faults by their TALQ names, a sensor fault,
# the charge point's OCPP StatusNotification and sessions, boot and OTA progress.
FAULTS = ("supplyLoss", "relayFailure", "lampFailure", "lampUnexpectedOn", "cyclingFailure")
EV_BOOT = "boot"
EV_OTA = "ota"
EV_EVSE = "evse_status"
EV_SESSION_START = "ev_session_start"
EV_SESSION_STOP = "ev_session_stop"
EV_SENSOR = "sensorFault"
EV_UNTRUSTED = "broker_untrusted"  # TLS handshakes refused: the broker's certificate
EV_LINK = "link"  # the pole's WLAN or LAN came up, went down, or failed with a new reason
EVENTS = (
    EV_BOOT,
    EV_OTA,
    EV_EVSE,
    EV_SESSION_START,
    EV_SESSION_STOP,
    EV_SENSOR,
    EV_UNTRUSTED,
    EV_LINK,
    *FAULTS,
)

# LwM2M Object 5 (Firmware Update): resource 3 State ...
IDLE = 0
DOWNLOADING = 1
DOWNLOADED = 2
UPDATING = 3
# ... and resource 5 Update Result, as an ota event, a failed ota ack ("update_result")
# and the boot state carry it.
R_INITIAL = 0
R_SUCCESS = 1
R_NO_FLASH = 2
R_NO_RAM = 3
R_CONN_LOST = 4
R_INTEGRITY = 5
R_UNSUPPORTED = 6
R_FAILED = 8
R_CANCELLED = 10
R_DEFERRED = 11

# By name, for the contract test and for people reading a code.
UPDATE_STATES = {k: globals()[k] for k in ("IDLE", "DOWNLOADING", "DOWNLOADED", "UPDATING")}
UPDATE_RESULTS = {k: v for k, v in dict(globals()).items() if k.startswith("R_")}

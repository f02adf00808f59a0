# The wire contract's names and codes on the node's side (docs/protocol.md): topics,
# commands, ack errors, events, the LwM2M update states and results. The controller keeps
# its own copy (lanterna.wire.numbers) and tests/test_wire_contract.py holds the two, and
# the JSON schemas, alike. Resident on a connected node: constants only, no code.

SCHEMA = 1  # the "v" of every payload the node sends and every command it accepts

# MQTT topics: PREFIX/{site}/{node}/{leaf}; the prefix is configurable ("mqtt_prefix").
PREFIX = "lanterna/v1"
STATUS = "status"  # retained "online" / "offline" (the LWT)
STATE = "state"  # retained JSON on change
TELE = "tele"  # every tele_s
EVENT = "event"  # faults, EV transitions, boot
CMD = "cmd"  # controller -> node
ACK = "ack"  # node -> controller, one per command
OTA_REQ = "ota/req"  # node -> controller: the next chunk of a bundle, please (docs/ota.md)
OTA_DATA = "ota/data"  # controller -> node: 4-byte big-endian offset, then the bytes
ONLINE = b"online"
OFFLINE = b"offline"

# Commands (the "cmd" of a command envelope).
DIM = "dim"
SCHEDULE = "schedule"
CONFIG_SET = "config_set"
REBOOT = "reboot"
IDENTIFY = "identify"
OTA = "ota"  # offer a signed bundle: the node pulls it on OTA_REQ / OTA_DATA
COMMANDS = (DIM, SCHEDULE, CONFIG_SET, REBOOT, IDENTIFY, OTA)

# Error codes in an ack whose "ok" is false.
E_MALFORMED = "malformed"  # not JSON, not an object, a field missing or of the wrong type
E_BAD_MAC = "bad_mac"  # the HMAC does not verify under this node's key
E_REPLAY = "replay"  # counter not above the last accepted one (replayed or reordered)
E_WRONG_NODE = "wrong_node"  # addressed to another node
E_UNKNOWN = "unknown_command"
E_BAD_ARGS = "bad_args"  # arguments out of range, unknown or missing
E_FAILED = "failed"  # valid, but applying it failed (e.g. flash full)
ERRORS = (E_MALFORMED, E_BAD_MAC, E_REPLAY, E_WRONG_NODE, E_UNKNOWN, E_BAD_ARGS, E_FAILED)

# Events (the "event" of an event payload) the resident code sends by name; the others
# (faults, the charge point's, sensorFault) are their modules' own (lamp.faults.NAMES,
# lamp.evse, lamp.sensors), and the LwM2M codes only the update code uses live in
# lamp.ota, loaded for an update and dropped after it: a resident module's every global
# costs heap for good (tests/test_wire_contract.py holds all of them to
# lanterna.wire.numbers and the schemas).
EV_BOOT = "boot"  # once per start: reset cause, firmware, what boot.py decided (ota)
EV_OTA = "ota"  # an update's progress and end: an LwM2M state and result

# LwM2M Object 5 (Firmware Update) as the resident app reports a trial's end: resource 3
# State idle, resource 5 Update Result success or failed (boot.py writes 8 as a literal:
# it imports nothing).
IDLE = 0
R_SUCCESS = 1
R_FAILED = 8  # flash I/O error; also a failed trial or a rollback by boot.py


# A dim override's end when it has none: until the next dim command (2038-01-19).
FOREVER = 0x7FFFFFFF

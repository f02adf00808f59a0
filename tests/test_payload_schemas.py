"""Every payload the node publishes validates against the project's JSON schema for its
topic (controller/lanterna/wire/schemas/), and the schemas themselves are valid."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import mpharness
from lamp.cmd import args as fwargs
from lanterna.sim.simbus import SimBus
from lanterna.wire import protocol

SCHEMAS = Path(protocol.__file__).with_name("schemas")
CHECK = Path(__file__).with_name("firmware") / "check_payloads.py"
KEY = bytes(range(32))
LEAVES = ("state", "tele", "event", "ack", "cmd", "ota_req")
# One valid command of every kind (docs/commands.md).
EXAMPLES = {
    "dim": {"level": 40, "fade_s": 2, "until_s": 3600},
    "schedule": {"schedule": {"v": 1, "id": "winter", "profiles": {}, "calendar": []}},
    "config_set": {"key": "tele_s", "value": 120},
    "reboot": {"delay_s": 0},
    "identify": {"seconds": 5},
    "ota": {"version": "1.2.3", "bundle": "0" * 64, "size": 90000, "chunk": 1024},
}


def schema(leaf: str) -> dict:
    return json.loads((SCHEMAS / f"{leaf}.json").read_text())


@pytest.mark.parametrize("leaf", LEAVES)
def test_schemas_are_valid_draft_2020_12(leaf):
    jsonschema.Draft202012Validator.check_schema(schema(leaf))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("payloads")
    cmds = [
        protocol.sign(KEY, "gw-001", "dim", {"level": 40, "until_s": 3600}, 1),
        protocol.sign(KEY, "gw-001", "dim", {"level": 40}, 1),  # replayed counter
        protocol.sign(bytes(32), "gw-001", "dim", {"level": 10}, 2),  # another key
        protocol.sign(KEY, "gw-002", "identify", {}, 3),  # another node
        protocol.sign(KEY, "gw-001", "config_set", {"key": "tele_s", "value": 120}, 4),
        protocol.sign(KEY, "gw-001", "dim", {"level": None}, 5),
    ]
    lines = [protocol.encode(c).decode() for c in cmds] + ["{not json"]
    (tmp / "cmds.jsonl").write_text("\n".join(lines) + "\n")
    bus = SimBus().start()
    try:
        proc = mpharness.run_firmware(
            CHECK,
            "publish_everything",
            extra_env={
                "PAYLOAD_CMDS": str(tmp / "cmds.jsonl"),
                "PAYLOAD_ROOT": str(tmp),
                "LANTERNA_SIMBUS": bus.address,
            },
        )
    finally:
        bus.stop()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "MPRUNNER-PASS" in proc.stdout, out
    pubs = []
    for line in proc.stdout.splitlines():
        if line.startswith("PUB "):
            _, leaf, payload = line.split(" ", 2)
            pubs.append((leaf, payload))
    return pubs, [json.loads(x) for x in lines[:-1]]


def test_every_published_payload_validates_against_its_topic_schema(published):
    pubs, _ = published
    seen = {}
    for leaf, payload in pubs:
        seen[leaf] = seen.get(leaf, 0) + 1
        if leaf == "status":
            assert payload in ("online", "offline")
            continue
        jsonschema.validate(json.loads(payload), schema(leaf))
    assert set(seen) == {"status", "state", "tele", "event", "ack"}, seen


def test_the_night_s_events_and_the_command_answers_are_all_there(published):
    pubs, _ = published
    events = [json.loads(p)["event"] for leaf, p in pubs if leaf == "event"]
    assert events[0] == "boot"
    for name in ("sensorFault", "evse_status", "ev_session_start", "ev_session_stop"):
        assert name in events, events
    stop = next(json.loads(p) for leaf, p in pubs if leaf == "event" and "ev_session_stop" in p)
    assert stop["wh"] == 2000 and stop["kwh"] == 2.0
    acks = [json.loads(p) for leaf, p in pubs if leaf == "ack"]
    assert [(a["ok"], a.get("error")) for a in acks] == [
        (True, None),
        (False, "replay"),
        (False, "bad_mac"),
        (False, "wrong_node"),
        (True, None),
        (True, None),
        (False, "malformed"),
    ]


def test_signed_commands_validate_against_the_cmd_schema(published):
    _, cmds = published
    for c in cmds:
        jsonschema.validate(c, schema("cmd"))


def test_every_command_kind_is_signed_and_validated():
    assert set(EXAMPLES) == set(protocol.COMMANDS)
    for n, (cmd, args) in enumerate(EXAMPLES.items(), 1):
        env = protocol.sign(KEY, "gw-001", cmd, args, n)
        jsonschema.validate(env, schema("cmd"))
        assert json.loads(protocol.encode(env)) == env
        fwargs.clean(cmd, args, ("tele_s",))  # and the node's argument table takes them

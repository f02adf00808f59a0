"""One executable wire contract (docs/protocol.md): the node's names and codes
(``lamp.numbers``), the controller's own (``lanterna.wire.numbers``) and the JSON schemas
agree, so a name or a code changed in one place fails here instead of on a pole."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import click
import jsonschema
import pytest

from lamp import faults, numbers
from lamp import ota as fw_ota
from lamp.cmd import args as fwargs
from lamp.ota import fetch
from lanterna.cli import commands, ota, params
from lanterna.ota import server
from lanterna.wire import numbers as wire
from lanterna.wire import protocol

SCHEMAS = Path(protocol.__file__).with_name("schemas")
FIRMWARE = Path(numbers.__file__).parent
KEY = bytes(range(32))


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def node_codes(prefix: str) -> dict[str, int]:
    # The resident lamp.numbers and the update code's lamp.ota hold them between them,
    # never one name twice with two values.
    out: dict[str, int] = {}
    for mod in (numbers, fw_ota):
        for k, v in vars(mod).items():
            if k.startswith(prefix) and k.isupper():
                assert out.setdefault(k, v) == v, k
    return out


def schema_events() -> set[str]:
    out = set()
    for branch in schema("event")["oneOf"]:
        ev = branch["properties"]["event"]
        out |= set(ev.get("enum", [ev.get("const")]))
    return out


def test_lwm2m_states_and_results_are_the_same_on_both_sides():
    node = {**vars(fw_ota), **vars(numbers)}
    states = {k: node[k] for k in wire.UPDATE_STATES}
    assert states == wire.UPDATE_STATES
    assert node_codes("R_") == wire.UPDATE_RESULTS


def test_event_names_are_the_same_on_both_sides_and_in_the_schema():
    # The resident names are the controller's ...
    for k, v in node_codes("EV_").items():
        assert getattr(wire, k) == v, k
    assert faults.NAMES == wire.FAULTS  # the resident fault monitor's own copy
    # ... and every event the controller knows is one the firmware sends, by that name.
    source = "".join(p.read_text() for p in FIRMWARE.rglob("*.py") if "hal" not in p.parts)
    for name in wire.EVENTS:
        assert f'"{name}"' in source, name
    assert schema_events() == set(wire.EVENTS)


def test_schema_enums_are_the_constants():
    assert schema("cmd")["properties"]["cmd"]["enum"] == list(wire.COMMANDS)
    failed = schema("ack")["oneOf"][1]["properties"]
    assert failed["error"]["enum"] == list(wire.ERRORS)
    results = sorted(wire.UPDATE_RESULTS.values())
    assert failed["update_result"]["enum"] == results
    branches = {b["properties"]["event"].get("const"): b for b in schema("event")["oneOf"]}
    ota = branches[wire.EV_OTA]["properties"]
    assert ota["state"]["enum"] == sorted(wire.UPDATE_STATES.values())
    assert ota["result"]["enum"] == results
    assert branches[wire.EV_BOOT]["properties"]["ota"]["properties"]["result"]["enum"] == results
    for name in ("ack", "cmd", "event", "state", "tele", "ota_req"):
        text = json.dumps(schema(name))
        assert re.findall(r'"v": \{"const": (\d+)\}', text) != [], name
        assert set(re.findall(r'"v": \{"const": (\d+)\}', text)) == {str(wire.SCHEMA)}, name
    assert numbers.SCHEMA == wire.SCHEMA


def test_the_node_s_contract_module_holds_no_code():
    # lamp.numbers is resident on every connected node: a function there (a topic
    # builder nobody called) costs heap for nothing.
    tree = ast.parse(Path(numbers.__file__).read_text())
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert defs == []


@pytest.mark.parametrize("ok", [True, False])
def test_ack_schema_and_parser_agree_on_the_detail(ok):
    # A failed ack without a detail: refused by both, or accepted by both (it is refused).
    ack = {"v": 1, "id": "c-1", "node": "gw-1", "ok": False, "error": "failed"}
    if ok:
        ack["detail"] = "why"
    valid = jsonschema.Draft202012Validator(schema("ack")).is_valid(ack)
    try:
        protocol.parse_ack(ack)
        parsed = True
    except protocol.AckError:
        parsed = False
    assert valid == parsed == ok


def test_ack_facts_are_fields_the_controller_reads():
    ack = {"v": 1, "id": "c-1", "node": "gw-1", "ok": False, "error": "replay", "detail": "x"}
    jsonschema.validate(ack | {"ctr": 41}, schema("ack"))
    assert protocol.parse_ack(ack | {"ctr": 41}).ctr == 41
    refused = ack | {"error": "failed", "update_result": wire.R_DEFERRED}
    jsonschema.validate(refused, schema("ack"))
    assert protocol.parse_ack(refused).update_result == wire.R_DEFERRED
    for bad in ({"ctr": -1}, {"ctr": True}, {"update_result": "11"}, {"counter": 1}):
        with pytest.raises(protocol.AckError):
            protocol.parse_ack(ack | bad)


def test_a_coap_put_of_another_command_gets_an_ack_the_controller_reads():
    # The node's own code (lamp.net.link in CPython): PUT /dim with a schedule envelope.
    from lamp.net.link import Net

    class Node:
        root = ""

    cfg = {"node": "gw-1", "key": KEY.hex(), "mqtt": None, "coap_port": 0, "site": "s"}
    env = protocol.sign(KEY, "gw-1", "schedule", {"schedule": {}}, 1)
    code, body, _ = Net(Node(), cfg)._coap(3, "/dim", protocol.encode(env), 50, None, None)
    ack = json.loads(body)
    jsonschema.validate(ack, schema("ack"))
    assert protocol.parse_ack(body).error == "malformed"


def test_the_node_s_chunk_request_validates_against_ota_req():
    jsonschema.Draft202012Validator.check_schema(schema("ota_req"))
    most = fwargs.ARGS["ota"]["chunk"][2]
    assert schema("ota_req")["properties"]["n"]["maximum"] == most
    for off, n in ((0, 1024), (123456, most), (7, 1)):
        req = json.loads(fetch.request("ab" * 32, off, n))
        jsonschema.validate(req, schema("ota_req"))
        assert (req["offset"], req["n"]) == (off, n)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(fetch.request("ab" * 32, 0, most + 1)), schema("ota_req"))


def test_the_cli_s_ranges_are_the_node_s_argument_table():
    def opt(cmd: click.Command, name: str) -> click.Parameter:
        return next(p for p in cmd.params if p.name == name)

    def bounds(p: click.Parameter) -> tuple:
        return (p.type.min, p.type.max)  # type: ignore[attr-defined]

    dim, ident = fwargs.ARGS["dim"], fwargs.ARGS["identify"]
    assert bounds(opt(commands.dim, "fade")) == dim["fade_s"][1:]
    assert commands.MAX_HOLD_S == dim["until_s"][2]
    assert bounds(opt(commands.identify, "seconds")) == ident["seconds"][1:]
    assert bounds(opt(commands.reboot, "delay")) == fwargs.ARGS["reboot"]["delay_s"][1:]
    rollout = ota.ota.commands["rollout"]
    assert bounds(opt(rollout, "chunk")) == fwargs.ARGS["ota"]["chunk"][1:]
    assert server.MAX_CHUNK == fwargs.ARGS["ota"]["chunk"][2]
    level = params.Level()
    lo, hi = dim["level"][1:]
    assert level.convert(str(hi), None, None) == hi and level.convert(str(lo), None, None) == lo
    for bad in (str(lo - 1), str(hi + 1)):
        with pytest.raises(click.ClickException):
            level.convert(bad, None, None)


def test_the_topic_tree_is_the_same_on_both_sides():
    from lamp import numbers as fw
    from lanterna.wire import topics

    for name in ("PREFIX", "STATUS", "STATE", "TELE", "EVENT", "ACK", "CMD", "OTA_REQ", "OTA_DATA"):
        assert getattr(topics, name) == getattr(fw, name), name
    assert topics.node_topic(topics.PREFIX, "baixa", "baixa-001", topics.TELE) == (
        "lanterna/v1/baixa/baixa-001/tele"
    )

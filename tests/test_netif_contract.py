"""The sim's model of the ESP32 ``network`` module (``lamp.hal.simnet``) and the link's
status names (``lamp.net.netif``) hold the port's own constants: the values that
micropython-esp32-stubs records from the ESP32_GENERIC firmware. And the link's event and
telemetry fields are in the wire schemas (docs/protocol.md)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import jsonschema
import pytest

from lamp.hal import simnet
from lamp.net import netif
from lanterna.wire import protocol

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / ".venv" / "mpy-typings" / "network.pyi"
SCHEMAS = Path(protocol.__file__).with_name("schemas")


def stub_constants() -> dict[str, int]:
    if not STUB.exists():
        pytest.fail(f"{STUB} missing: run `make lint` once (it installs the stubs)")
    text = STUB.read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+): Final\[int\] = (\d+)$", text, re.M)}


def test_the_model_s_constants_are_the_port_s():
    stub = stub_constants()
    mine = {k: v for k, v in vars(simnet).items() if k[0] != "_" and k.isupper() and type(v) is int}
    assert {"STA_IF", "STAT_GOT_IP", "STAT_WRONG_PASSWORD", "ETH_GOT_IP", "PHY_LAN8720"} <= set(
        mine
    )
    for k, v in mine.items():
        assert stub[k] == v, k


def test_every_status_the_port_has_is_named_as_its_constant():
    stub = stub_constants()
    for k, v in stub.items():
        if k.startswith("STAT_"):
            name = netif.status_name(v)
            assert name.startswith(k[5:].lower()) or (k, name) in {
                ("STAT_ASSOC_FAIL", "connect_fail")
            }, k
        elif k.startswith("ETH_"):
            want = "got_ip" if k == "ETH_GOT_IP" else k.lower()
            assert netif.status_name(v) == want, k


def test_the_hal_s_network_calls_are_the_same_on_both_boards():
    # The sim HAL makes the calls the ESP32 HAL makes, in the same order (the models'
    # answers differ, the code path does not).
    def calls(path: Path) -> list[list[str]]:
        tree = ast.parse(path.read_text())
        out = []
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name.startswith("net_"):
                    names = [
                        n.func.attr
                        for n in ast.walk(fn)
                        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                    ]
                    out.append([fn.name, *names])
        return out

    fw = REPO / "firmware" / "lamp" / "hal"
    sim = [c for c in calls(fw / "sim.py") if c]
    esp = calls(fw / "esp32.py")
    # The sim loads its scenario first and has no machine.Pin: drop those calls.
    drop = {"load", "Pin"}
    sim = [[x for x in c if x not in drop and x != "_env"] for c in sim]
    esp = [[x for x in c if x not in drop] for c in esp]
    assert sim == esp


def test_link_event_and_telemetry_match_the_schemas():
    event = json.loads((SCHEMAS / "event.json").read_text())
    tele = json.loads((SCHEMAS / "tele.json").read_text())
    up = {
        "v": 1,
        "ts": "2026-11-25T22:15:05Z",
        "event": "link",
        "if": "wlan",
        "up": True,
        "status": "got_ip",
        "tries": 1,
        "ip": "10.0.4.2",
        "rssi": -61,
        "down_s": 1805,
        "lost": "beacon_timeout",
    }
    jsonschema.validate(up, event)
    down = {k: up[k] for k in ("v", "ts", "event", "if", "tries")} | {
        "up": False,
        "status": "wrong_password",
    }
    jsonschema.validate(down, event)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**down, "password": "x"}, event)  # no other field, a key least
    props = tele["properties"]
    jsonschema.validate(
        {"if": "lan", "status": "eth_disconnected", "up": False, "tries": 3}, props["link"]
    )
    jsonschema.validate(None, props["rssi"])

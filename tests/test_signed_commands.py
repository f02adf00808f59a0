"""The controller's signed commands, checked by the node's own code inside MicroPython.

CPython signs random commands with ``lanterna.wire.protocol`` (json.dumps + hmac) and mixes in
replayed, reordered, forged, mutated, misaddressed and malformed ones, each with the ack
code, the cleaned arguments and the counter a correct node must end up with; the node's
``lamp.cmd`` (a hand-written serialiser + RFC 2104 over hashlib) answers each, in
order, under the pole's heap budget (tests/firmware/check_commands.py). The controller's
ack parser then reads every ack the node wrote.
"""

from __future__ import annotations

import hmac
import json
import random
import re
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest

import mpharness
from lamp import numbers
from lamp.cmd import args as fwargs
from lamp.cmd import canon as fwcanon
from lamp.cmd import handler as fwcmd
from lanterna.wire import protocol

CHECK = Path(__file__).parent / "firmware" / "check_commands.py"
NODE = "lis-baixa-017"
CONFIG_KEYS = ["tele_s", "log_level", "failsafe_level"]
N = 400
# Printable ASCII without '"' and '\': the strings both serialisers write alike.
TEXT = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\')


def rand_text(rng: random.Random, most: int = 12) -> str:
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(0, most)))


def rand_value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth >= 4 or r < 0.5:
        return rng.choice(
            [
                rng.randint(-(2**40), 2**40),
                rng.randint(-5, 5),
                rng.choice([True, False, None]),
                rand_text(rng),
            ]
        )
    if r < 0.75:
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rand_text(rng, 8): rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def rand_schedule(rng: random.Random) -> dict:
    # Shaped like a schedule (the node only checks it is an object), nested lists/dicts.
    steps = [
        {
            "at": rng.choice(["sunset", "sunrise", "22:00", "00:30"]),
            "offset": rng.randint(-90, 90),
            "level": rng.randint(0, 100),
        }
        for _ in range(rng.randint(1, 5))
    ]
    return {
        "v": 1,
        "id": rand_text(rng, 20) or "s",
        "profiles": {"night": {"steps": steps, "extra": rand_value(rng, 1)}},
        "calendar": [{"days": rng.sample(range(7), rng.randint(1, 7)), "profile": "night"}],
    }


def rand_command(rng: random.Random) -> tuple[str, dict, dict]:
    # -> (cmd, args as sent, args as the node hands them to apply())
    cmd = rng.choice(numbers.COMMANDS)
    if cmd == numbers.DIM:
        if rng.random() < 0.2:
            args: dict[str, Any] = {"level": None}
            if rng.random() < 0.5:
                args["fade_s"] = rng.randint(0, 3600)
            return cmd, args, {"level": None, "fade_s": args.get("fade_s", 0)}
        args = {"level": rng.randint(0, 100)}
        for k, hi in (("fade_s", 3600), ("until_s", 604800)):
            if rng.random() < 0.5:
                args[k] = rng.randint(0, hi)
        if "until_s" not in args and rng.random() < 0.3:
            args["until_s"] = None
        want = {"level": args["level"], "fade_s": args.get("fade_s", 0)}
        want["until_s"] = args.get("until_s") or 0
        return cmd, args, want
    if cmd == numbers.SCHEDULE:
        args = {"schedule": rand_schedule(rng)}
        return cmd, args, args
    if cmd == numbers.CONFIG_SET:
        args = {"key": rng.choice(CONFIG_KEYS), "value": rand_value(rng)}
        return cmd, args, args
    if cmd == numbers.REBOOT:
        args = {"delay_s": rng.randint(0, 60)} if rng.random() < 0.5 else {}
        return cmd, args, {"delay_s": args.get("delay_s", 0)}
    if cmd == numbers.OTA:
        args = {
            "version": ".".join(str(rng.choice([0, 1, 9, 10, 123])) for _ in range(3)),
            "bundle": f"{rng.getrandbits(256):064x}",
            "size": rng.randint(1, 4000000),
        }
        if rng.random() < 0.5:
            args["chunk"] = rng.randint(256, 4096)
        return cmd, args, args | {"chunk": args.get("chunk", 1024)}
    args = {"seconds": rng.randint(1, 600)} if rng.random() < 0.5 else {}
    return cmd, args, {"seconds": args.get("seconds", 10)}


BAD_ARGS = [
    ("dim", {}),
    ("dim", {"level": 101}),
    ("dim", {"level": -1}),
    ("dim", {"level": "50"}),
    ("dim", {"level": 50, "fade_s": 3601}),
    ("dim", {"level": 50, "until_s": 604801}),
    ("dim", {"level": None, "until_s": 5}),
    ("dim", {"level": 50, "ramp": 1}),
    ("schedule", {}),
    ("schedule", {"schedule": "night"}),
    ("config_set", {"key": "mqtt_password", "value": "x"}),
    ("config_set", {"key": "tele_s"}),
    ("reboot", {"delay_s": 61}),
    ("identify", {"seconds": 0}),
    ("ota", {"bundle": "0" * 64, "size": 1}),
    ("ota", {"version": "1.0", "bundle": "0" * 64, "size": 1}),
    ("ota", {"version": "1.0.01", "bundle": "0" * 64, "size": 1}),
    ("ota", {"version": "1.0.0", "bundle": "0" * 63, "size": 1}),
    ("ota", {"version": "1.0.0", "bundle": "A" * 64, "size": 1}),
    ("ota", {"version": "1.0.0", "bundle": "0" * 64, "size": 4000001}),
    ("ota", {"version": "1.0.0", "bundle": "0" * 64, "size": 1, "chunk": 4097}),
]


def wire(rng: random.Random, env: dict) -> str:
    # The node must verify any JSON spelling of the envelope, not only the canonical one.
    r = rng.random()
    if r < 0.5:
        return protocol.encode(env).decode()
    if r < 0.75:
        return json.dumps(env)
    items = list(env.items())
    rng.shuffle(items)
    return json.dumps(dict(items), indent=rng.choice([None, 1, 2]))


def unsigned(env: dict, key: bytes) -> str:
    # An envelope protocol.sign() refuses to make (a float, a non-ASCII string, too deep):
    # MAC'd over json.dumps as a careless signer would; the node must call it malformed.
    body = {k: v for k, v in env.items() if k != "mac"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps(body | {"mac": hmac.new(key, canon, sha256).hexdigest()})


def write_vectors(path: Path, seed: int = 4231) -> tuple[list[dict], dict]:
    rng = random.Random(seed)
    key, other = protocol.new_key(), protocol.new_key()
    last = 0  # the node's last accepted counter, as a correct node keeps it
    accepted: list[tuple[str, str]] = []  # (raw, id) of accepted commands
    lines: list[dict] = []

    def add(what: str, raw: str, want: str, id: str | None, cmd=None, args=None) -> None:
        nonlocal last
        if want == "ok":
            last = json.loads(raw)["ctr"]
            accepted.append((raw, id or ""))
        lines.append(
            {"what": what, "raw": raw, "want": want, "id": id, "cmd": cmd, "args": args}
            | {"last": last}
        )

    for _ in range(N):
        nxt = last + rng.choice([1, 1, 1, 2, 7, 1000])
        r = rng.random()
        if r < 0.45 or not accepted:
            cmd, args, want = rand_command(rng)
            env = protocol.sign(key, NODE, cmd, args, nxt)
            add("valid " + cmd, wire(rng, env), "ok", env["id"], cmd, want)
        elif r < 0.52:
            raw, id = rng.choice(accepted)
            add("replayed", raw, numbers.E_REPLAY, id)
        elif r < 0.58:
            cmd, args, _ = rand_command(rng)
            env = protocol.sign(key, NODE, cmd, args, rng.randint(1, last))
            add("reordered", wire(rng, env), numbers.E_REPLAY, env["id"])
        elif r < 0.66:
            cmd, args, _ = rand_command(rng)
            env = protocol.sign(key, NODE, cmd, args, nxt)
            how = rng.choice(["args", "ctr", "cmd", "mac", "key", "id"])
            if how == "args":
                env["args"] = {"level": 7} if args != {"level": 7} else {"level": 8}
            elif how == "ctr":
                env["ctr"] += 1
            elif how == "cmd":
                env["cmd"] = "reboot" if cmd != "reboot" else "identify"
            elif how == "mac":
                i = rng.randrange(64)
                c = env["mac"][i]
                env["mac"] = env["mac"][:i] + ("0" if c != "0" else "f") + env["mac"][i + 1 :]
            elif how == "id":
                env["id"] = env["id"] + "x"
            else:
                env = protocol.sign(other, NODE, cmd, args, nxt, id=env["id"])
            add("forged " + how, wire(rng, env), numbers.E_BAD_MAC, env["id"])
        elif r < 0.70:
            cmd, args, _ = rand_command(rng)
            env = protocol.sign(key, NODE + "x", cmd, args, nxt)
            add("wrong node", wire(rng, env), numbers.E_WRONG_NODE, env["id"])
        elif r < 0.74:
            env = protocol.sign(key, NODE, rng.choice(["Dim", "factory_reset", "x"]), {}, nxt)
            add("unknown command", wire(rng, env), numbers.E_UNKNOWN, env["id"])
        elif r < 0.84:
            cmd, args = rng.choice(BAD_ARGS)
            env = protocol.sign(key, NODE, cmd, args, nxt)
            add("bad args", wire(rng, env), numbers.E_BAD_ARGS, env["id"])
        else:
            env = protocol.sign(key, NODE, "dim", {"level": 50}, nxt)
            how = rng.choice(["float", "unicode", "quote", "deep", "field", "no mac", "v", "big"])
            raw = wire(rng, env)
            id: str | None = env["id"]
            if how == "float":
                raw = unsigned(env | {"args": {"level": 50.0}}, key)
            elif how == "unicode":
                raw = unsigned(
                    env | {"args": {"level": 50, "note": "Baixa-Chiado \u00e0 noite"}}, key
                )
            elif how == "quote":
                raw = unsigned(env | {"args": {"level": 50, "note": 'a "b"'}}, key)
            elif how == "deep":
                deep: Any = 1
                for _ in range(protocol.MAX_DEPTH - 1):  # envelope + args + 15 = 17 levels
                    deep = [deep]
                raw = unsigned(env | {"args": {"level": 50, "x": deep}}, key)
            elif how == "field":
                raw = json.dumps(env | {"prio": 1})
            elif how == "no mac":
                raw = json.dumps({k: v for k, v in env.items() if k != "mac"})
            elif how == "v":
                raw = json.dumps(env | {"v": numbers.SCHEMA + 1})
            else:
                big = {"level": 50, "pad": "x" * protocol.MAX_BYTES}
                raw = unsigned(env | {"args": big}, key)
                id = None  # refused before it is parsed: no id to echo
            add("malformed " + how, raw, numbers.E_MALFORMED, id)
    # The counter a rejected command carried is still free: reuse one at the end.
    cmd, args = BAD_ARGS[1]
    env = protocol.sign(key, NODE, cmd, args, last + 1)
    add("bad args", protocol.encode(env).decode(), numbers.E_BAD_ARGS, env["id"])
    env = protocol.sign(key, NODE, "identify", {}, last + 1)
    add(
        "same ctr, now valid",
        protocol.encode(env).decode(),
        "ok",
        env["id"],
        "identify",
        {"seconds": 10},
    )
    with path.open("w") as f:
        f.write(json.dumps({"node": NODE, "key": key.hex(), "config_keys": CONFIG_KEYS}) + "\n")
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return lines, {"key": key}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    path = tmp_path_factory.mktemp("commands") / "vectors.jsonl"
    lines, _ = write_vectors(path)
    return lines, mpharness.run_vectors(CHECK, "check_vectors", "COMMAND_VECTORS", path)


def test_node_answers_every_signed_forged_and_replayed_command_as_expected(checked):
    lines, out = checked
    assert mpharness.checked_count(out, "COMMANDS") == (len(lines), 0), out[-3000:]


def test_vectors_cover_every_outcome(checked):
    lines, _ = checked
    wants = {line["want"] for line in lines}
    assert wants == {"ok"} | set(numbers.ERRORS) - {numbers.E_FAILED}
    whats = {line["what"].split()[0] for line in lines}
    assert {"valid", "replayed", "reordered", "forged", "malformed"} <= whats
    valid = {line["cmd"] for line in lines if line["want"] == "ok"}
    assert valid == set(numbers.COMMANDS)
    assert sum(line["want"] == "ok" for line in lines) > N // 3


def test_controller_reads_every_ack_the_node_wrote(checked):
    lines, out = checked
    acks = [protocol.parse_ack(m) for m in re.findall(r"^ACK (.*)$", out, re.M)]
    assert len(acks) == len(lines)
    for ack, line in zip(acks, lines, strict=True):
        assert ack.node == NODE and ack.id == line["id"]
        assert (ack.ok and line["want"] == "ok") or ack.error == line["want"]
        assert ack.error is None or ack.error in numbers.ERRORS
        if not ack.ok:  # the detail never carries a MAC (the key never reaches it)
            assert not re.search(r"[0-9a-f]{64}", ack.detail), ack


def test_both_sides_name_the_same_commands_errors_and_limits():
    env = protocol.sign(protocol.new_key(), NODE, numbers.IDENTIFY, {}, 1)
    assert env["v"] == numbers.SCHEMA
    # The controller's names are its own (lanterna.wire.numbers): equal, not the same object.
    assert protocol.COMMANDS == numbers.COMMANDS and protocol.ERRORS == numbers.ERRORS
    assert protocol.COMMANDS is not numbers.COMMANDS
    for name in ("MAX_BYTES", "MAX_ID", "MAX_CTR"):
        assert getattr(protocol, name) == getattr(fwcmd, name), name
    assert protocol.MAX_DEPTH == fwcanon.MAX_DEPTH
    # The node's modules name nothing of the contract themselves: they import lamp.numbers.
    for mod in (fwcmd, fwargs):
        src = Path(mod.__file__).read_text()
        for name in numbers.COMMANDS + numbers.ERRORS:
            if name != numbers.SCHEDULE:  # also the name of that command's one argument
                assert f'"{name}"' not in src, (mod.__name__, name)


def test_canonical_is_the_same_bytes_on_both_serialisers():
    rng = random.Random(2104)
    for _ in range(2000):
        v = rand_value(rng)
        assert protocol.canonical(v) == fwcanon.canonical(v), v
    env = protocol.sign(b"k" * 32, NODE, "schedule", {"schedule": rand_schedule(rng)}, 9)
    assert protocol.encode(env) == fwcanon.canonical(env)


def test_mac_is_rfc2104_hmac_sha256_over_the_canonical_envelope():
    key = protocol.new_key()
    env = protocol.sign(key, NODE, "dim", {"level": 30, "fade_s": 10}, 42, id="c-42")
    body = protocol.canonical({k: v for k, v in env.items() if k != "mac"})
    assert body == (
        b'{"args":{"fade_s":10,"level":30},"cmd":"dim","ctr":42,"id":"c-42",'
        b'"node":"lis-baixa-017","v":1}'
    )
    assert env["mac"] == fwcanon.hmac_sha256(key, body).hex() == protocol.mac(key, env)
    assert re.fullmatch(r"[0-9a-f]{64}", env["mac"])


@pytest.mark.parametrize(
    "value",
    [1.0, float("nan"), "caf\u00e9", 'a"b', "a\\b", "\n", "\x7f", (1, 2), b"x", {1: 2}, {"\t": 1}],
)
def test_canonical_refuses_what_the_node_calls_malformed(value):
    with pytest.raises(ValueError):
        protocol.canonical(value)
    with pytest.raises(ValueError):
        protocol.canonical({"args": [value]})


def test_sign_refuses_what_the_node_would_reject():
    key = protocol.new_key()
    good: dict[str, Any] = {"key": key, "node": NODE, "cmd": "dim", "args": {}, "ctr": 1}
    for bad in (
        {"key": b"short"},
        {"key": "k" * 32},
        {"ctr": 0},
        {"ctr": True},
        {"ctr": 2**53},
        {"ctr": 1.0},
        {"args": [1]},
        {"args": {"level": 0.5}},
        {"node": ""},
        {"node": 'a"b'},
        {"cmd": "x" * 65},
        {"id": "x" * 65},
        {"id": ""},
        {"args": {"pad": "x" * protocol.MAX_BYTES}},
    ):
        with pytest.raises(ValueError):
            protocol.sign(**(good | bad))
    assert protocol.sign(**good)["ctr"] == 1


def test_new_keys_and_ids_are_fresh():
    keys = {protocol.new_key() for _ in range(50)}
    assert len(keys) == 50 and all(len(k) == protocol.KEY_BYTES == 32 for k in keys)
    ids = {protocol.new_id() for _ in range(50)}
    assert len(ids) == 50 and all(0 < len(i) <= protocol.MAX_ID for i in ids)


def test_parse_ack_takes_the_two_shapes_and_nothing_else():
    ok = {"v": 1, "id": "c-1", "node": NODE, "ok": True, "result": {"level": 40}}
    nak = {"v": 1, "id": None, "node": NODE, "ok": False, "error": "malformed", "detail": "x"}
    assert protocol.parse_ack(json.dumps(ok)) == protocol.Ack("c-1", NODE, True, {"level": 40})
    assert protocol.parse_ack(nak).error == numbers.E_MALFORMED
    for bad in (
        "nope",
        "[]",
        ok | {"v": 2},
        ok | {"v": True},
        ok | {"ok": "yes"},
        ok | {"result": []},
        ok | {"error": "replay"},
        nak | {"error": "on_fire"},
        nak | {"detail": None},
        {k: v for k, v in nak.items() if k != "node"},
    ):
        with pytest.raises(protocol.AckError):
            protocol.parse_ack(bad)  # type: ignore[arg-type]

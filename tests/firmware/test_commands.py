# Authenticated commands on the node: HMAC-SHA256 against RFC 4231, the canonical form,
# and every rejection leaving the node exactly as it was (docs/commands.md).
import gc
import json
import os
import random
from binascii import crc32, hexlify

from fw import RUN, cleanup, fresh, raises
from lamp.cmd.canon import canonical, equal, hmac_sha256
from lamp.cmd.handler import MAX_BYTES, CommandError, Commands
from lamp.numbers import (
    E_BAD_ARGS,
    E_BAD_MAC,
    E_FAILED,
    E_MALFORMED,
    E_REPLAY,
    E_UNKNOWN,
    E_WRONG_NODE,
    SCHEMA,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NODE = "gr-0042"
CONFIG_KEYS = ("tele_s", "log_level")


def _fresh(name):
    return fresh("cmd-" + name)


def _cleanup():
    # Called at the end of each test that made files (a failing test leaves them to read).
    cleanup("cmd-")


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _ctr_file(path, n):
    d = "%d" % n
    with open(path, "w") as f:
        f.write("%s %08x\n" % (d, crc32(d.encode())))


def _mac(env, key=KEY):
    return hexlify(hmac_sha256(key, canonical(env))).decode()


def _env(ctr, cmd="dim", args=None, node=NODE, key=KEY, id="c-%d"):
    env = {"v": SCHEMA, "id": id % ctr if "%" in id else id, "node": node, "ctr": ctr}
    env["cmd"] = cmd
    env["args"] = {"level": 40} if args is None else args
    env["mac"] = _mac(env, key)
    return env


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _raw(env):
    return json.dumps(env)


class Node:
    # Commands with an apply() that records its calls; `check` runs inside apply().
    def __init__(self, name, last=None, result=None, check=None):
        self.path = _fresh(name)
        if last is not None:
            _ctr_file(self.path, last)
        self.calls = []
        self.result = result
        self.check = check
        self.cmds = Commands(NODE, KEY, self.path, self.apply, CONFIG_KEYS)

    def apply(self, cmd, args):
        self.calls.append((cmd, args))
        if self.check:
            return self.check(cmd, args)
        return self.result


def test_hmac_sha256_matches_rfc4231():
    cases = (
        (
            b"\x0b" * 20,
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            b"\xaa" * 20,
            b"\xdd" * 50,
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            bytes(range(1, 26)),
            b"\xcd" * 50,
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            b"\xaa" * 131,  # case 6: a key longer than the block is hashed first
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            b"\xaa" * 131,  # case 7: and data longer than the block
            b"This is a test using a larger than block-size key and a larger than block-size"
            b" data. The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    )
    for i, (key, data, want) in enumerate(cases):
        got = hexlify(hmac_sha256(key, data)).decode()
        assert got == want, (i, got)


def test_equal_compares_whole_macs():
    a = bytes(range(32))
    assert equal(a, bytes(range(32)))
    assert not equal(a, bytes(range(31)) + b"\x00")
    assert not equal(a, b"\xff" + a[1:])
    assert not equal(a, a[:31])


def test_canonical_form_sorts_keys_and_has_no_whitespace():
    assert canonical({}) == b"{}" and canonical([]) == b"[]" and canonical("") == b'""'
    assert canonical({"b": 1, "a": [True, False, None, -5, "x y/z"]}) == (
        b'{"a":[true,false,null,-5,"x y/z"],"b":1}'
    )
    assert canonical({"z": {"y": [], "B": {}, "a": [[1], {"k": "v"}]}, "A": 0}) == (
        b'{"A":0,"z":{"B":{},"a":[[1],{"k":"v"}],"y":[]}}'
    )
    assert canonical(123456789012345678901234567890) == b"123456789012345678901234567890"
    assert canonical(" !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~") == (
        b'" !#$%&\'()*+,-./09:;<=>?@AZ[]^_`az{|}~"'
    )
    # Whatever spelling arrives (whitespace, key order, \u escapes), one form comes out.
    parsed = json.loads(' { "b" : [ 1 , 2 ] , "a" : "\\u0041" } ')
    assert canonical(parsed) == b'{"a":"A","b":[1,2]}'


def test_canonical_rejects_what_has_two_spellings():
    for bad in (1.5, {"a": 1.0}, "caf\u00e9", 'say "hi"', "back\\slash", "tab\t", "\x7f", b"x"):
        raises(ValueError, canonical, bad)
    deep = []
    for _ in range(16):
        deep = [deep]
    raises(ValueError, canonical, deep)  # 17 levels
    canonical(deep[0])  # 16 levels is the limit


def test_accepted_command_saves_the_counter_before_apply_and_acks_the_result():
    def check(cmd, args):
        # The counter is on flash before anything is applied.
        assert _read(node.path).split()[0] == "7"
        return {"level": args["level"]}

    node = Node("accept", check=check)
    assert node.cmds.last == 0  # no file: nothing accepted yet
    env = _env(7, args={"level": 40, "fade_s": 30})
    ack = node.cmds.handle(_raw(env).encode())
    assert ack == {"v": SCHEMA, "id": "c-7", "node": NODE, "ok": True, "result": {"level": 40}}
    assert node.calls == [("dim", {"level": 40, "fade_s": 30, "until_s": 0})]
    assert node.cmds.last == 7 and node.cmds.status()["accepted"] == 1
    assert not _exists("/tmp/lanterna-test-%d-cmd-accept.tmp" % RUN)
    # A new instance (a reboot) reads it back.
    again = Commands(NODE, KEY, node.path, node.apply)
    assert again.last == 7
    assert again.handle(_raw(env))["error"] == E_REPLAY
    _cleanup()


def _rejections():
    # (what, payload, code) against a node whose last accepted counter is 5 (the payload
    # of that command is "replayed").
    big = _env(6, args={"level": 40, "pad": "x" * MAX_BYTES})
    no_ctr = _env(6)
    del no_ctr["ctr"]
    extra = _env(6)
    extra["extra"] = 1
    mutated = _env(6, args={"level": 40})
    mutated["args"]["level"] = 100
    flipped = _env(6)
    flipped["mac"] = ("0" if flipped["mac"][0] != "0" else "1") + flipped["mac"][1:]
    upper = _env(6)
    upper["mac"] = upper["mac"].upper()
    deep = _env(6)  # 17 levels: the envelope, args and 15 more (unsignable: any MAC)
    for _ in range(15):
        deep["args"] = {"d": deep["args"]}
    out = [
        ("too big", _raw(big), E_MALFORMED),
        ("not json", '{"v": 1, "id": "c-6",', E_MALFORMED),
        ("not an object", "[1, 2]", E_MALFORMED),
        ("empty", b"", E_MALFORMED),
        ("binary", b"\xff\xfe\x00{", E_MALFORMED),
        ("missing ctr", _raw(no_ctr), E_MALFORMED),
        ("unknown field", _raw(extra), E_MALFORMED),
        ("v 2", _raw(_env(6)).replace('"v": 1', '"v": 2'), E_MALFORMED),
        ("v true", _raw(_env(6)).replace('"v": 1', '"v": true'), E_MALFORMED),
        ("id too long", _raw(_env(6, id="i" * 65)), E_MALFORMED),
        ("id empty", _raw(_env(6, id="")), E_MALFORMED),
        ("ctr 0", _raw(_env(0)), E_MALFORMED),
        ("ctr negative", _raw(_env(-3)), E_MALFORMED),
        ("ctr float", _raw(_env(6)).replace('"ctr": 6', '"ctr": 6.0'), E_MALFORMED),
        ("ctr string", _raw(_env(6)).replace('"ctr": 6', '"ctr": "6"'), E_MALFORMED),
        ("ctr true", _raw(_env(6)).replace('"ctr": 6', '"ctr": true'), E_MALFORMED),
        ("ctr 2^53", _raw(_env(9007199254740992)), E_MALFORMED),
        ("args list", _raw(_env(6, args=[1])), E_MALFORMED),
        ("mac upper", _raw(upper), E_MALFORMED),
        ("mac short", _raw(_env(6)).replace('"mac": "', '"mac": "0'), E_MALFORMED),
        ("float arg", _raw(_env(6)).replace('"level": 40', '"level": 40.0'), E_MALFORMED),
        ("non-ascii", _raw(_env(6)).replace('"c-6"', '"c-\\u00e9"'), E_MALFORMED),
        (
            "escaped quote",
            _raw(_env(6, args={"level": 40, "s": "a"})).replace('"a"', '"\\""'),
            E_MALFORMED,
        ),
        ("too deep", _raw(deep), E_MALFORMED),
        ("wrong node", _raw(_env(6, node="gr-0043")), E_WRONG_NODE),
        ("other key", _raw(_env(6, key=OTHER_KEY)), E_BAD_MAC),
        ("mutated args", _raw(mutated), E_BAD_MAC),
        ("flipped mac", _raw(flipped), E_BAD_MAC),
        ("replayed", _raw(_env(5)), E_REPLAY),
        ("reordered", _raw(_env(3)), E_REPLAY),
        ("unknown command", _raw(_env(6, cmd="selfdestruct", args={})), E_UNKNOWN),
    ]
    for args, cmd in (
        ({}, "dim"),
        ({"level": 101}, "dim"),
        ({"level": -1}, "dim"),
        ({"level": "50"}, "dim"),
        ({"level": True}, "dim"),
        ({"level": 50, "fade_s": 3601}, "dim"),
        ({"level": 50, "until_s": 604801}, "dim"),
        ({"level": None, "until_s": 60}, "dim"),
        ({"level": 50, "colour": "red"}, "dim"),
        ({}, "schedule"),
        ({"schedule": [1]}, "schedule"),
        ({"schedule": {}, "now": True}, "schedule"),
        ({"key": "tele_s"}, "config_set"),
        ({"key": "mqtt_password", "value": "x"}, "config_set"),
        ({"key": 1, "value": 1}, "config_set"),
        ({"delay_s": 61}, "reboot"),
        ({"seconds": 0}, "identify"),
        ({"seconds": 601}, "identify"),
        ({"bundle": "0" * 64, "size": 9}, "ota"),
        ({"version": "1.2.3", "size": 9}, "ota"),
        ({"version": "1.2.3", "bundle": "0" * 64}, "ota"),
        ({"version": "1.2", "bundle": "0" * 64, "size": 9}, "ota"),
        ({"version": "1.2.03", "bundle": "0" * 64, "size": 9}, "ota"),
        ({"version": "1.2.x", "bundle": "0" * 64, "size": 9}, "ota"),
        ({"version": 1, "bundle": "0" * 64, "size": 9}, "ota"),
        ({"version": "1.2.3", "bundle": "0" * 65, "size": 9}, "ota"),
        ({"version": "1.2.3", "bundle": "F" * 64, "size": 9}, "ota"),
        ({"version": "1.2.3", "bundle": "0" * 64, "size": 0}, "ota"),
        ({"version": "1.2.3", "bundle": "0" * 64, "size": 4000001}, "ota"),
        ({"version": "1.2.3", "bundle": "0" * 64, "size": 9, "chunk": 255}, "ota"),
        ({"version": "1.2.3", "bundle": "0" * 64, "size": 9, "chunk": 4097}, "ota"),
        ({"version": "1.2.3", "bundle": "0" * 64, "size": 9, "url": "x"}, "ota"),
    ):
        out.append(
            ("bad args %s %s" % (cmd, json.dumps(args)), _raw(_env(6, cmd, args)), E_BAD_ARGS)
        )
    return out


def test_every_rejection_changes_nothing_and_names_its_error():
    node = Node("reject", last=4)
    ok = node.cmds.handle(_raw(_env(5)))
    assert ok["ok"] is True and node.cmds.last == 5
    before = _read(node.path)
    node.calls.clear()
    key_hex = hexlify(KEY).decode()
    for what, raw, code in _rejections():
        gc.collect()
        ack = node.cmds.handle(raw)
        assert ack["ok"] is False and ack["error"] == code, (what, ack)
        want = {"v", "id", "node", "ok", "error", "detail"}
        if code == E_REPLAY:  # the node's counter as a field: the controller resumes above
            want.add("ctr")
            assert ack["ctr"] == 5, (what, ack)
        assert set(ack) == want, what
        assert ack["v"] == SCHEMA and ack["node"] == NODE, what
        assert len(ack["detail"]) <= 80 and key_hex not in ack["detail"], what
        for word in raw.split('"') if isinstance(raw, str) else ():
            if len(word) == 64:  # a MAC (real or forged) is never echoed
                assert word not in ack["detail"], what
        assert node.calls == [] and node.cmds.last == 5, what
        assert _read(node.path) == before, what
        # one stat, not a listing of /tmp: a crowded /tmp (a few hundred files) made the
        # listing fragment this heap until the 8 KB envelope no longer fit
        assert not _exists("/tmp/lanterna-test-%d-cmd-reject.tmp" % RUN), what
    assert node.cmds.status()["rejected"] == len(_rejections())
    # ...and the next counter is still free.
    assert node.cmds.handle(_raw(_env(6)))["ok"] is True
    _cleanup()


def test_ack_echoes_the_id_when_it_can():
    node = Node("ids", last=5)
    assert node.cmds.handle(_raw(_env(5)))["id"] == "c-5"  # replay: id known
    assert node.cmds.handle(_raw(_env(6, node="x")))["id"] == "c-6"
    env = _env(6)
    del env["mac"]
    assert node.cmds.handle(_raw(env))["id"] == "c-6"  # malformed, but the id is fine
    assert node.cmds.handle("junk")["id"] is None
    assert node.cmds.handle(_raw(_env(6, id="x" * 65)))["id"] is None
    _cleanup()


def test_rejected_command_does_not_use_up_its_counter():
    node = Node("reuse", last=5)
    assert node.cmds.handle(_raw(_env(6, args={"level": 200})))["error"] == E_BAD_ARGS
    assert node.cmds.handle(_raw(_env(6, node="other")))["error"] == E_WRONG_NODE
    assert node.cmds.handle(_raw(_env(6, key=OTHER_KEY)))["error"] == E_BAD_MAC
    assert node.cmds.handle(_raw(_env(6)))["ok"] is True
    assert node.calls == [("dim", {"level": 40, "fade_s": 0, "until_s": 0})]
    _cleanup()


def test_counters_may_skip_but_never_go_back():
    node = Node("skip")
    for ctr, ok in ((1, True), (1000, True), (999, False), (1000, False), (1001, True)):
        assert node.cmds.handle(_raw(_env(ctr)))["ok"] is ok, ctr
    assert node.cmds.last == 1001
    _cleanup()


def test_args_get_their_defaults():
    node = Node("defaults")
    cases = (
        ("dim", {"level": 0}, {"level": 0, "fade_s": 0, "until_s": 0}),
        ("dim", {"level": 100, "until_s": None}, {"level": 100, "fade_s": 0, "until_s": 0}),
        ("dim", {"level": 30, "fade_s": 5, "until_s": 3600}, None),
        ("dim", {"level": None}, {"level": None, "fade_s": 0}),
        ("dim", {"level": None, "fade_s": 10}, None),
        ("schedule", {"schedule": {"v": 1, "steps": [[1, {"a": None}]]}}, None),
        ("config_set", {"key": "tele_s", "value": 300}, None),
        ("config_set", {"key": "log_level", "value": None}, None),
        ("reboot", {}, {"delay_s": 0}),
        ("reboot", {"delay_s": 60}, None),
        ("identify", {}, {"seconds": 10}),
        ("identify", {"seconds": 600}, None),
        (
            "ota",
            {"version": "10.0.1", "bundle": "0a" * 32, "size": 1},
            {"version": "10.0.1", "bundle": "0a" * 32, "size": 1, "chunk": 1024},
        ),
        ("ota", {"version": "0.0.0", "bundle": "f" * 64, "size": 4000000, "chunk": 4096}, None),
    )
    for i, (cmd, args, want) in enumerate(cases):
        ack = node.cmds.handle(_raw(_env(i + 1, cmd, args)))
        assert ack["ok"] is True, (cmd, args, ack)
        assert node.calls[-1] == (cmd, args if want is None else want), node.calls[-1]
        assert ack["result"] == {}  # apply() returned None
    _cleanup()


def test_command_error_from_apply_is_acked_with_its_code():
    def check(cmd, args):
        raise CommandError(E_BAD_ARGS, "schedule: profiles[0]: missing")

    node = Node("cmderr", check=check)
    ack = node.cmds.handle(_raw(_env(3, "schedule", {"schedule": {}})))
    assert ack["error"] == E_BAD_ARGS and ack["detail"] == "schedule: profiles[0]: missing"
    # The counter was spent before apply() ran: the same command cannot come back.
    assert node.cmds.last == 3
    assert node.cmds.handle(_raw(_env(3, "schedule", {"schedule": {}})))["error"] == E_REPLAY

    def unknown(cmd, args):
        raise CommandError("on_fire", "no such code")

    node = Node("cmderr2", check=unknown)
    assert node.cmds.handle(_raw(_env(1)))["error"] == E_FAILED
    _cleanup()


def test_exception_in_apply_is_acked_as_failed():
    def check(cmd, args):
        raise OSError(28)  # ENOSPC: the flash is full

    node = Node("boom", check=check)
    ack = node.cmds.handle(_raw(_env(1)))
    assert ack["ok"] is False and ack["error"] == E_FAILED
    assert ack["detail"].startswith("OSError"), ack
    assert node.cmds.last == 1
    _cleanup()


def test_handle_never_raises():
    node = Node("junk", last=1)
    random.seed(7)
    for _ in range(200):
        raw = bytes(random.getrandbits(8) for _ in range(random.getrandbits(8) + 1))
        ack = node.cmds.handle(raw)
        assert ack["ok"] is False and ack["error"] == E_MALFORMED, (raw, ack)
    for raw in (None, 42, "null", "{}", '{"v":1}', "[" * 5000):
        assert node.cmds.handle(raw)["ok"] is False
    assert node.calls == [] and node.cmds.last == 1
    _cleanup()


def test_counter_that_cannot_be_saved_applies_nothing():
    node = Node("nosave")
    node.cmds.path = "/tmp/lanterna-no-such-dir-%d/ctr" % RUN
    ack = node.cmds.handle(_raw(_env(1)))
    assert ack["error"] == E_FAILED and ack["detail"].startswith("cannot save counter")
    assert node.calls == [] and node.cmds.last == 0
    _cleanup()


def test_corrupt_counter_file_refuses_every_command():
    good = "41 %08x\n" % crc32(b"41")
    for junk in ("", "garbage", "41", "41 00000000\n", good.replace("41", "14", 1), "-1 0\n"):
        node = Node("corrupt")
        with open(node.path, "w") as f:
            f.write(junk)
        node.cmds = Commands(NODE, KEY, node.path, node.apply)
        for ctr in (1, 42, 10**9):
            ack = node.cmds.handle(_raw(_env(ctr)))
            assert ack["error"] == E_REPLAY, (junk, ack)
        assert node.calls == [] and _read(node.path) == junk
    node = Node("corrupt-ok")
    with open(node.path, "w") as f:
        f.write(good)
    node.cmds = Commands(NODE, KEY, node.path, node.apply)
    assert node.cmds.last == 41
    _cleanup()


def test_interrupted_save_keeps_the_higher_counter():
    # A power cut between the temp file and the rename: the temp value counts.
    node = Node("cut", last=5)
    _ctr_file(node.path + ".tmp", 6)
    assert Commands(NODE, KEY, node.path, node.apply).last == 6
    # FAT's remove-then-rename: only the temp file is there.
    os.remove(node.path)
    assert Commands(NODE, KEY, node.path, node.apply).last == 6
    # A temp file cut short mid-write is ignored.
    _ctr_file(node.path, 5)
    with open(node.path + ".tmp", "w") as f:
        f.write("7")
    assert Commands(NODE, KEY, node.path, node.apply).last == 5
    _cleanup()


def test_key_must_be_32_bytes():
    raises(ValueError, Commands, NODE, b"short", "/tmp/x", None)
    raises(ValueError, Commands, NODE, "k" * 32, "/tmp/x", None)


def test_heap_of_the_handler_and_of_one_command():
    gc.collect()
    a0 = gc.mem_alloc()
    node = Node("heap")
    gc.collect()
    a1 = gc.mem_alloc()
    raw = _raw(_env(1, "schedule", {"schedule": {"v": 1, "profiles": [[1, 2, 3]] * 8}}))
    gc.collect()
    a2 = gc.mem_alloc()
    node.cmds.handle(raw)
    a3 = gc.mem_alloc()  # no collection: everything handle() allocated, garbage included
    gc.collect()
    print("COMMANDS instance=%d handle=%d payload=%d" % (a1 - a0, a3 - a2, len(raw)))
    assert a1 - a0 < 2048
    assert a3 - a2 < 16 * len(raw) + 4096
    _cleanup()

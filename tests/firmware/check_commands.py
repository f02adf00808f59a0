# MicroPython side of tests/test_signed_commands.py (not collected: no test_ prefix).
# Feeds the controller's signed (and forged, replayed, mutated, malformed) envelopes from
# $COMMAND_VECTORS, one JSON line at a time and in order, to one Commands instance, and
# compares each ack, each apply() call and the counter with what the CPython side expects.
# Prints every ack ("ACK <json>") for the controller's ack parser.
import gc
import json
import os
import random
from binascii import unhexlify

from lamp.cmd.handler import Commands


def check_vectors():
    path = "/tmp/lanterna-interop-%d-ctr" % random.getrandbits(30)
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    calls = []

    def apply(cmd, args):
        calls.append((cmd, args))
        return {"cmd": cmd}

    checked = bad = 0
    with open(os.getenv("COMMAND_VECTORS")) as f:
        head = json.loads(f.readline())
        node = head["node"]
        cmds = Commands(node, unhexlify(head["key"]), path, apply, head["config_keys"])
        for line in f:
            v = json.loads(line)
            line = None
            del calls[:]
            ack = cmds.handle(v["raw"])
            got = "ok" if ack["ok"] else ack["error"]
            ok = got == v["want"] and ack["id"] == v["id"] and ack["node"] == node
            ok = ok and cmds.last == v["last"]
            if got == "ok":
                ok = ok and calls == [(v["cmd"], v["args"])] and ack["result"] == {"cmd": v["cmd"]}
            else:
                ok = ok and calls == []
            checked += 1
            if not ok:
                bad += 1
                if bad <= 10:
                    print(
                        "MISMATCH %s: got %r last=%d calls=%r" % (v["what"], ack, cmds.last, calls)
                    )
            print("ACK %s" % json.dumps(ack))
            v = None
            if checked % 50 == 0:
                gc.collect()
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    print("COMMANDS checked=%d mismatches=%d" % (checked, bad))

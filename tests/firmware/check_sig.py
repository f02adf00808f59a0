# MicroPython side of tests/test_ota_sig.py (not collected: no test_ prefix).
# Streams the signature vectors from $SIG_VECTORS, one JSON line at a time: hashes each
# message file through hashlib in small chunks (as the node hashes a manifest it receives),
# calls lamp.ota.sig.verify and compares its answer (True, False or a ValueError naming the
# key) with what the CPython side expects; checks key_id of every key first.
import gc
import hashlib
import json
import os
from binascii import hexlify, unhexlify

from lamp.ota.sig import key_id, verify

_CHUNK = 512


def _digest(path, buf):
    h = hashlib.sha256()
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return h.digest()


def _arg(hexval, kind):
    if kind == "str":
        return hexval
    if kind == "none":
        return None
    b = unhexlify(hexval)
    if kind == "bytearray":
        return bytearray(b)
    if kind == "int":
        return int.from_bytes(b, "big") if b else 0
    return b


def check_vectors():
    checked = bad = 0
    buf = bytearray(_CHUNK)
    with open(os.getenv("SIG_VECTORS")) as f:
        head = json.loads(f.readline())
        keys = {}
        for name, n in head["keys"].items():
            keys[name] = unhexlify(n)
            checked += 1
            if key_id(keys[name]) != head["ids"][name]:
                bad += 1
                print("MISMATCH key_id %s: %s" % (name, key_id(keys[name])))
        head = None
        keys["str"] = hexlify(keys["fleet"]).decode()
        keys["none"] = None
        for line in f:
            v = json.loads(line)
            line = None
            ok = True
            digest = unhexlify(v["digest"])
            if "msg" in v:
                ok = _digest(v["msg"], buf) == digest
            n = keys[v["key"]]
            try:
                got = verify(n, _arg(v["sig"], v["sig_as"]), _arg(v["digest"], v["digest_as"]))
            except ValueError as e:
                got = "ValueError"
                msg = str(e)
                ok = ok and "key" in msg
                if isinstance(n, bytes):
                    ok = ok and key_id(n) in msg and ("%d bytes" % len(n)) in msg
            ok = ok and got == v["want"]
            checked += 1
            if not ok:
                bad += 1
                if bad <= 10:
                    print("MISMATCH %s: got %r want %r" % (v["what"], got, v["want"]))
            v = None
            gc.collect()
    print("SIG checked=%d mismatches=%d" % (checked, bad))

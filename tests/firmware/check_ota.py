# MicroPython side of tests/test_ota_install.py (not collected: no test_ prefix).
# check_cases: installs every bundle listed in $OTA_CASES (one JSON line each, made by the
# CPython side with lanterna.ota.bundle and a throwaway key) in random chunk sizes, and
# prints one "OTA {...}" line per case: the result code, the detail, the version and the
# heap the install took. powercut: installs $OTA_BUNDLE into $OTA_ROOT, resuming from
# Install(...).offset, printing "fed N" after every chunk; the CPython side kills it.
import gc
import json
import os
import random
import time
from binascii import unhexlify

from lamp.ota import install as ota

_BUF = 2048


def _key():
    with open(os.getenv("OTA_KEY")) as f:
        return unhexlify(f.read().strip())


def _install(case, key, buf, peak):
    root = case["root"]
    st = ota.state(root)
    running = ota.slot_version(root, st["slot"]) or "0.0.0"
    inst = ota.Install(root, key, running, case.get("board", "sim"))
    with open(case["bundle"], "rb") as f:
        f.seek(inst.offset)
        while True:
            n = f.readinto(memoryview(buf)[: 1 + random.getrandbits(11) % case["chunk"]])
            if not n:
                break
            inst.feed(memoryview(buf)[:n])
            peak[0] = max(peak[0], gc.mem_alloc())
    v = inst.finish()
    peak[0] = max(peak[0], gc.mem_alloc())
    return v


def check_cases():
    key = _key()
    buf = bytearray(_BUF)
    real_free = ota.flash_free
    with open(os.getenv("OTA_CASES")) as f:
        for line in f:
            case = json.loads(line)
            line = None
            random.seed(case["seed"])
            free = case.get("free")
            ota.flash_free = (lambda root: free) if free else real_free  # noqa: B023
            out = {"what": case["what"], "result": ota.R_SUCCESS, "detail": "", "version": None}
            gc.collect()
            base = gc.mem_alloc()
            peak = [base]
            try:
                out["version"] = _install(case, key, buf, peak)
            except ota.OtaError as e:
                out["result"], out["detail"] = e.result, e.detail
            out["heap"] = peak[0] - base
            case = None
            print("OTA " + json.dumps(out))
            gc.collect()
    ota.flash_free = real_free


class _CutAt:
    # lamp.ota.install's os, with a power cut (SIGKILL of this process, from a shell whose parent
    # it is) just before the n-th rename, remove or mkdir: every step of the switch is hit.
    def __init__(self, n):
        self.n = n

    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in ("rename", "remove", "mkdir"):
            return real

        def op(*args):
            self.n -= 1
            if self.n == 0:
                print("cut before %s%r" % (name, args))
                os.system("kill -9 $PPID")
            return real(*args)

        return op


def powercut():
    # One life of a node installing a bundle: it may be killed (SIGKILL) at any line, or
    # kill itself before its OTA_CUT_AT-th file operation.
    root = os.getenv("OTA_ROOT")
    random.seed(int(os.getenv("OTA_SEED")))
    if os.getenv("OTA_CUT_AT"):
        ota.os = _CutAt(int(os.getenv("OTA_CUT_AT")))
    st = ota.state(root)
    if st["trial"]:
        print("switched %s" % ota.slot_version(root, st["slot"]))
        return
    inst = ota.Install(root, _key(), ota.slot_version(root, st["slot"]), "sim")
    print("start %d" % inst.offset)
    pace = int(os.getenv("OTA_PACE_US") or 0)
    buf = bytearray(_BUF)
    with open(os.getenv("OTA_BUNDLE"), "rb") as f:
        f.seek(inst.offset)
        while True:
            n = f.readinto(memoryview(buf)[: 1 + random.getrandbits(11) % 1200])
            if not n:
                break
            inst.feed(memoryview(buf)[:n])
            print("fed %d" % inst.offset)
            time.sleep_us(pace)  # a radio is slower than flash: cuts land mid-download
    print("finishing")
    print("switched %s" % inst.finish())

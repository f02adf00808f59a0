"""OTA manifest signature check on the node: RSA-3072 PKCS#1 v1.5 against Ed25519 (and PSS).

The measurement that picked lamp.ota.sig's algorithm (issue 7, docs/ota.md "Signature
algorithm"). CPython makes the keys and signatures with `cryptography` over a realistic
manifest; MicroPython (the unix port, under the 110K budget) verifies each with a
pure-Python verifier compiled by mpy-cross, as it ships: lamp.ota.sig for RSA-3072 PKCS#1 v1.5
(SHA-256, e = 65537), bench/ed25519_mp.py for Ed25519 (RFC 8032 sec. 5.1.7, with a
pure-Python SHA-512: MicroPython's hashlib has none), bench/pss_mp.py for RSA-PSS.
Per algorithm: verify time (median of --runs, ms), the heap one verify allocates (garbage
included, collector off), the free heap one verify needs (the least, to 64 bytes, under
which it still succeeds: its peak plus fragmentation), the .mpy size and its import cost.
`vs_cpython`: how many times slower than OpenSSL in CPython. Baseline
measured in the same run: the same verifies in CPython by `cryptography` (OpenSSL), and an
ESP32 estimate from the 50-100x DESIGN.md gives for the unix port. Every verifier is first
checked to accept a good signature and refuse a spoiled one, in both interpreters.
Printed, one JSON object. Run: .venv/bin/python bench/bench_ota_verify.py [--runs 101]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path[:0] = [str(REPO / "firmware"), str(REPO / "controller"), str(BENCH)]

import ed25519_mp  # noqa: E402
import pss_mp  # noqa: E402

from lamp.ota import sig  # noqa: E402
from lanterna.device.firmware import mpy_cross  # noqa: E402

MP = str(Path(sys.executable).with_name("micropython"))
BUDGET = "110K"
ALLOC_HEAP = "64M"  # the collector is off while one verify's allocations are counted
ESP32_FACTOR = (50, 100)  # DESIGN.md: pow() on an ESP32 vs this unix port

# name -> (module as imported on the node, .py it is compiled from, its verify call)
ALGORITHMS = {
    "rsa3072_pkcs1v15": ("lamp.ota.sig", REPO / "firmware/lamp/ota/sig.py", "m.verify(n, s, d)"),
    "ed25519": ("ed25519_mp", BENCH / "ed25519_mp.py", "m.verify(pub, d, s)"),
    "rsa3072_pss": ("pss_mp", BENCH / "pss_mp.py", "m.verify(n, s, d)"),
}

# One verify per call of `run()`; MODE "time" times them, "peak" finds the least free heap
# one verify needs (to 64 bytes), "alloc" does one with the collector off (all it
# allocates, garbage included: run with a large heap).
SCRIPT = r"""
import gc, json, time
from binascii import unhexlify
MODE = %(mode)r
with open(%(vectors)r) as f:
    v = json.load(f)
n = unhexlify(v["n"]); pub = unhexlify(v["pub"]); d = unhexlify(v["digest"])
s = unhexlify(v[%(sig)r]); bad = bytearray(s); bad[5] ^= 1; bad = bytes(bad)
v = None
if "." in %(module)r:
    __import__(%(module)r.split(".")[0])  # the package itself is not the verifier's cost
gc.collect(); a = gc.mem_alloc()
m = __import__(%(module)r, None, None, ["verify"])
gc.collect(); imported = gc.mem_alloc() - a
run = lambda: %(call)s
hold = [None] * 4096
def fits(free):
    # Fill the heap with small blocks until `free` bytes are left (first fit fills the
    # holes first, so what is left is mostly one run at the end), then try one verify.
    gc.collect()
    i = 0
    try:
        while gc.mem_free() > free + 64 and i < 4096:
            hold[i] = bytearray(16); i += 1
        return run() is True
    except MemoryError:
        return False
    finally:
        for j in range(i):
            hold[j] = None
        gc.collect()
if MODE == "peak":
    lo, hi = 0, 65536
    while hi - lo > 64:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    print(json.dumps({"heap_needed_bytes": hi}))
elif MODE == "alloc":
    gc.collect(); gc.disable(); a = gc.mem_alloc(); run(); alloc = gc.mem_alloc() - a
    print(json.dumps({"alloc_bytes": alloc}))
else:
    assert run() is True
    s, bad = bad, s
    assert run() is False
    s, bad = bad, s
    us = []
    for i in range(%(runs)d):
        t = time.ticks_us(); ok = run(); us.append(time.ticks_diff(time.ticks_us(), t))
        assert ok
    us.sort()
    out = {"median_ms": us[len(us) // 2] / 1000, "min_ms": us[0] / 1000,
           "max_ms": us[-1] / 1000, "import_bytes": imported}
    if %(module)r == "ed25519_mp":
        # What signing the whole manifest (not its sha256) would add: its SHA-512.
        t = time.ticks_us(); m._sha512_py(bytes(%(manifest_len)d))
        out["sha512_manifest_ms"] = time.ticks_diff(time.ticks_us(), t) / 1000
        t = time.ticks_us(); m._sha512_py(bytes(96))
        out["sha512_one_block_ms"] = time.ticks_diff(time.ticks_us(), t) / 1000
    print(json.dumps(out))
"""


def manifest() -> bytes:
    # Shaped like `lanterna ota build`'s: ~40 modules with sha256 and size.
    files = [
        {
            "path": f"lamp/m{i:02d}.mpy",
            "sha256": hashlib.sha256(b"%d" % i).hexdigest(),
            "size": 900 + 37 * i,
        }
        for i in range(40)
    ]
    doc = {
        "v": 1,
        "version": "1.4.0",
        "min_version": "1.2.0",
        "boards": ["esp32-devkitc", "sim"],
        "created": "2026-11-20T10:00:00Z",
        "files": files,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def signatures(msg: bytes) -> tuple[dict, dict]:
    """-> (the vectors the node gets, the CPython verifiers of each algorithm)"""
    digest = hashlib.sha256(msg).digest()
    rk = rsa.generate_private_key(65537, 3072)
    ek = ed25519.Ed25519PrivateKey.generate()
    rpub, epub = rk.public_key(), ek.public_key()
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    vec = {
        "n": rpub.public_numbers().n.to_bytes(sig.KEY_BYTES, "big").hex(),
        "pub": epub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex(),
        "digest": digest.hex(),
        "rsa3072_pkcs1v15": rk.sign(msg, padding.PKCS1v15(), hashes.SHA256()).hex(),
        # Ed25519 signs the manifest's sha256: its SHA-512 then sees 96 bytes, not the
        # manifest (the cheapest way to use Ed25519 on a node without C SHA-512).
        "ed25519": ek.sign(digest).hex(),
        "rsa3072_pss": rk.sign(msg, pss, hashes.SHA256()).hex(),
    }
    pre = Prehashed(hashes.SHA256())
    cpython = {
        "rsa3072_pkcs1v15": lambda s: rpub.verify(s, digest, padding.PKCS1v15(), pre),
        "ed25519": lambda s: epub.verify(s, digest),
        "rsa3072_pss": lambda s: rpub.verify(s, digest, pss, pre),
    }
    return vec, cpython


def check_in_cpython(vec: dict) -> None:
    # The pure-Python verifiers against the oracle's signatures, before any timing.
    n, pub, d = (bytes.fromhex(vec[k]) for k in ("n", "pub", "digest"))
    calls = {
        "rsa3072_pkcs1v15": lambda s: sig.verify(n, s, d),
        "ed25519": lambda s: ed25519_mp.verify(pub, d, s),
        "rsa3072_pss": lambda s: pss_mp.verify(n, s, d),
    }
    for name, call in calls.items():
        s = bytes.fromhex(vec[name])
        spoiled = bytes([s[0] ^ 1]) + s[1:]
        assert call(s) is True and call(spoiled) is False, name
    assert ed25519_mp._sha512_py(b"abc") == hashlib.sha512(b"abc").digest()


def cpython_ms(verify, s: bytes, runs: int) -> float:
    ns = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        verify(s)
        ns.append(time.perf_counter_ns() - t)
    ns.sort()
    return ns[len(ns) // 2] / 1e6


def compile_all(out: Path) -> dict[str, int]:
    """The modules as the node gets them (.mpy) -> .mpy bytes per algorithm."""
    (out / "lamp").mkdir(parents=True)
    mpy_cross(REPO / "firmware/lamp/__init__.py", out / "lamp/__init__.mpy")
    sizes = {}
    for name, (module, src, _) in ALGORITHMS.items():
        dest = out / (module.replace(".", "/") + ".mpy")
        mpy_cross(src, dest)
        sizes[name] = dest.stat().st_size
    return sizes


def run_mp(root: Path, vectors: Path, name: str, mode: str, heap: str, runs: int, msg_len: int):
    module, _, call = ALGORITHMS[name]
    code = SCRIPT % {
        "mode": mode,
        "vectors": str(vectors),
        "sig": name,
        "module": module,
        "call": call,
        "runs": runs,
        "manifest_len": msg_len,
    }
    env = dict(os.environ, MICROPYPATH=f"{root}:.frozen")
    return subprocess.run(
        [MP, "-X", f"heapsize={heap}", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=101)
    args = ap.parse_args()
    msg = manifest()
    vec, cpython = signatures(msg)
    check_in_cpython(vec)
    result: dict = {
        "bench": "ota_verify",
        "interpreter": "micropython unix port 1.29, -X heapsize=" + BUDGET,
        "runs": args.runs,
        "manifest_bytes": len(msg),
        "algorithms": {},
    }
    with tempfile.TemporaryDirectory(prefix="lanterna-bench-sig-") as tmp:
        root = Path(tmp) / "mpy"
        sizes = compile_all(root)
        vectors = Path(tmp) / "vectors.json"
        vectors.write_text(json.dumps(vec))
        for name in ALGORITHMS:
            proc = run_mp(root, vectors, name, "time", BUDGET, args.runs, len(msg))
            if proc.returncode != 0:
                sys.exit(f"{name}: MicroPython failed\n{proc.stdout}{proc.stderr}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            proc = run_mp(root, vectors, name, "alloc", ALLOC_HEAP, 0, 0)
            if proc.returncode != 0:
                sys.exit(f"{name}: MicroPython failed\n{proc.stdout}{proc.stderr}")
            r |= json.loads(proc.stdout.strip().splitlines()[-1])
            proc = run_mp(root, vectors, name, "peak", BUDGET, 0, 0)
            if proc.returncode != 0:
                sys.exit(f"{name}: MicroPython failed\n{proc.stdout}{proc.stderr}")
            r |= json.loads(proc.stdout.strip().splitlines()[-1])
            s = bytes.fromhex(vec[name])
            r |= {
                "mpy_bytes": sizes[name],
                "sig_bytes": len(s),
                "key_bytes": 32 if name == "ed25519" else sig.KEY_BYTES,
                "cpython_cryptography_ms": round(cpython_ms(cpython[name], s, args.runs), 4),
            }
            r["vs_cpython"] = round(r["median_ms"] / r["cpython_cryptography_ms"], 1)
            r["esp32_estimate_ms"] = [round(r["median_ms"] * f) for f in ESP32_FACTOR]
            result["algorithms"][name] = r
    algs = result["algorithms"]
    rsa_ms, ed_ms = algs["rsa3072_pkcs1v15"]["median_ms"], algs["ed25519"]["median_ms"]
    if rsa_ms <= ed_ms:
        result["choice"] = "rsa3072_pkcs1v15"
        rsa, ed, pss = algs["rsa3072_pkcs1v15"], algs["ed25519"], algs["rsa3072_pss"]
        result["why"] = (
            f"{ed_ms / rsa_ms:.1f}x faster than pure-Python Ed25519 in MicroPython "
            f"({rsa_ms:.2f} vs {ed_ms:.2f} ms), needs {rsa['heap_needed_bytes']} vs "
            f"{ed['heap_needed_bytes']} bytes of free heap and allocates "
            f"{rsa['alloc_bytes']} vs {ed['alloc_bytes']}; PSS takes the same time "
            f"({pss['median_ms']:.2f} ms) but allocates {pss['alloc_bytes']} bytes and its "
            "randomised encoding must be parsed, where PKCS#1 v1.5's is rebuilt and compared"
        )
    else:
        result["choice"] = "ed25519"
        result["why"] = f"faster than RSA-3072 in MicroPython ({ed_ms:.2f} vs {rsa_ms:.2f} ms)"
    print(json.dumps(result))


if __name__ == "__main__":
    main()

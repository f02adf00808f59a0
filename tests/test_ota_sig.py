"""OTA manifest signatures made by `cryptography`, checked in MicroPython by lamp.ota.sig.

CPython makes RSA-3072 keys and signs messages (empty to 100 KB) with RSASSA-PKCS1-v1_5 /
SHA-256, then spoils them every way a verifier has been fooled before: flipped bits, another
key, PSS, the SHA-1 DigestInfo, signatures >= n (among them s + n, which opens to the very
same message), wrong lengths and types, and encoded messages that a loose parser would
accept (short padding with trailing garbage, a BER long-form length, DigestInfo without its
NULL, block type 2), each signed with the real private key so only the encoding is wrong.
tests/firmware/check_sig.py streams every message through hashlib and lamp.ota.sig.verify under
the pole's heap budget; CPython's lamp.ota.sig must give the same answers (the controller's
`ota inspect` may use it). A 2048-bit key where the 3072-bit one belongs is a ValueError
naming the key.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import mpharness
from lamp.ota import sig

CHECK = Path(__file__).parent / "firmware" / "check_sig.py"
K = sig.KEY_BYTES
INFO256 = bytes.fromhex("3031300d060960864801650304020105000420")
INFO256_NO_NULL = bytes.fromhex("302f300b06096086480165030402010420")
INFO256_BER = bytes.fromhex("30813130810d060960864801650304020105000420")
INFO1 = bytes.fromhex("3021300906052b0e03021a05000414")


def modulus(key: rsa.RSAPrivateKey) -> bytes:
    n = key.public_key().public_numbers().n
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def pkcs1(msg: bytes, key: rsa.RSAPrivateKey) -> bytes:
    return key.sign(msg, padding.PKCS1v15(), hashes.SHA256())


def raw_sign(em: bytes, key: rsa.RSAPrivateKey) -> bytes:
    # The private-key operation on an encoded message of our making (RFC 8017 RSASP1).
    priv = key.private_numbers()
    n = priv.public_numbers.n
    return pow(int.from_bytes(em, "big"), priv.d, n).to_bytes(K, "big")


def em(tail: bytes, lead: bytes = b"\x00\x01", fill: int = 0xFF) -> bytes:
    # lead, then `fill` bytes up to the 0x00 separator, then tail: KEY_BYTES in all
    return lead + bytes([fill]) * (K - len(lead) - 1 - len(tail)) + b"\x00" + tail


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {
        "fleet": rsa.generate_private_key(65537, 3072),
        "other": rsa.generate_private_key(65537, 3072),
        "rsa2048": rsa.generate_private_key(65537, 2048),
    }


def write_vectors(folder: Path, keys: dict[str, rsa.RSAPrivateKey]) -> list[dict]:
    rng = random.Random(8017)
    fleet = keys["fleet"]
    n = int.from_bytes(modulus(fleet), "big")
    mods = {name: modulus(k) for name, k in keys.items()}
    mods["padded2048"] = bytes(K - 256) + mods["rsa2048"]  # 384 bytes, 2048 bits
    mods["even"] = mods["fleet"][:-1] + bytes([mods["fleet"][-1] ^ 1])
    mods["short"] = mods["fleet"][:-1]
    manifest = json.dumps(
        {
            "version": "1.4.0",
            "min_version": "1.2.0",
            "boards": ["esp32-devkitc", "sim"],
            "files": [
                {"path": f"lamp/m{i}.mpy", "sha256": rng.randbytes(32).hex(), "size": i * 97}
                for i in range(30)
            ],
        },
        sort_keys=True,
    ).encode()
    messages = {
        "empty": b"",
        "one byte": b"\x00",
        "manifest": manifest,
        "block edge": rng.randbytes(4096),
        "100 KB": rng.randbytes(100_000),
    }
    files: dict[str, str] = {}
    lines: list[dict] = []

    def msg_file(name: str, data: bytes) -> str:
        path = folder / f"msg-{len(files)}.bin"
        path.write_bytes(data)
        files[name] = str(path)
        return str(path)

    def add(what, want, msg=None, digest=None, s=b"", key="fleet", s_as="bytes", d_as="bytes"):
        line = {"what": what, "want": want, "key": key, "sig": s.hex(), "sig_as": s_as}
        if msg is not None:
            line["msg"] = files.get(msg[0]) or msg_file(msg[0], msg[1])
            digest = hashlib.sha256(msg[1]).digest()
        line |= {"digest": digest.hex(), "digest_as": d_as}
        lines.append(line)

    for name, data in messages.items():
        good = pkcs1(data, fleet)
        add(f"valid, {name}", True, (name, data), s=good)
        add(f"valid as bytearray, {name}", True, (name, data), s=good, s_as="bytearray")
        for bit in (0, 7, rng.randrange(8 * K), 8 * K - 1):
            add(f"sig bit {bit} flipped, {name}", False, (name, data), s=flip(good, bit))
        if data:
            bit = rng.randrange(8 * len(data))
            add(f"msg bit {bit} flipped, {name}", False, (name + "~", flip(data, bit)), s=good)
        add(f"other key, {name}", False, (name, data), s=pkcs1(data, keys["other"]))

    data = manifest
    digest = hashlib.sha256(data).digest()
    good = pkcs1(data, fleet)
    add("valid, digest as bytearray", True, ("manifest", data), s=good, d_as="bytearray")
    pss = fleet.sign(
        data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH), hashes.SHA256()
    )
    add("PSS signature", False, ("manifest", data), s=pss)
    sha1 = fleet.sign(data, padding.PKCS1v15(), hashes.SHA1())
    add("SHA-1 PKCS#1 v1.5 signature", False, ("manifest", data), s=sha1)
    add("SHA-1 DigestInfo over the SHA-256 digest", False, ("manifest", data),
        s=raw_sign(em(INFO1 + digest), fleet))  # fmt: skip
    add("SHA-256 DigestInfo over SHA-1 digest", False, digest=hashlib.sha1(data).digest(),
        s=raw_sign(em(INFO256 + hashlib.sha1(data).digest()), fleet))  # fmt: skip
    # Encodings a loose parser accepts; our own encoding, signed with the real key, first.
    add("re-encoded EM signed raw (control)", True, ("manifest", data),
        s=raw_sign(em(INFO256 + digest), fleet))  # fmt: skip
    garbage = rng.randbytes(200)
    add("short padding, trailing garbage", False, ("manifest", data),
        s=raw_sign(b"\x00\x01" + b"\xff" * 8 + b"\x00" + INFO256 + digest
                   + garbage[: K - 11 - 51], fleet))  # fmt: skip
    add("BER long-form lengths in DigestInfo", False, ("manifest", data),
        s=raw_sign(em(INFO256_BER + digest), fleet))  # fmt: skip
    add("DigestInfo without NULL parameters", False, ("manifest", data),
        s=raw_sign(em(INFO256_NO_NULL + digest), fleet))  # fmt: skip
    add("block type 2", False, ("manifest", data),
        s=raw_sign(em(INFO256 + digest, lead=b"\x00\x02"), fleet))  # fmt: skip
    bad_ps = bytearray(em(INFO256 + digest))
    bad_ps[100] = 0xFE
    add("one padding byte 0xFE", False, ("manifest", data), s=raw_sign(bytes(bad_ps), fleet))
    add("no 0x00 separator", False, ("manifest", data),
        s=raw_sign(b"\x00\x01" + b"\xff" * (K - 2 - 51) + INFO256 + digest, fleet))  # fmt: skip
    add("EM shifted one byte left", False, ("manifest", data),
        s=raw_sign(em(INFO256 + digest + b"\x00")[1:] + b"\x00", fleet))  # fmt: skip
    # Lengths, ranges, types.
    add("sig one byte longer (leading 0x00)", False, ("manifest", data), s=b"\x00" + good)
    add("sig one byte longer (trailing)", False, ("manifest", data), s=good + b"\x00")
    add("sig one byte shorter", False, ("manifest", data), s=good[1:])
    add("empty sig", False, ("manifest", data), s=b"")
    add("sig = n", False, ("manifest", data), s=n.to_bytes(K, "big"))
    add("sig all 0xFF (> n)", False, ("manifest", data), s=b"\xff" * K)
    add("all-zero sig", False, ("manifest", data), s=bytes(K))
    add("sig = 1", False, ("manifest", data), s=(1).to_bytes(K, "big"))
    add("sig = n - 1", False, ("manifest", data), s=(n - 1).to_bytes(K, "big"))
    for i in range(200):  # a valid s whose s + n still fits in KEY_BYTES
        m = b"congruent %d" % i
        s = int.from_bytes(pkcs1(m, fleet), "big")
        if s + n < 1 << (8 * K):
            add("valid (congruent control)", True, ("congruent", m), s=s.to_bytes(K, "big"))
            add("s + n (>= n, same message)", False, ("congruent", m),
                s=(s + n).to_bytes(K, "big"))  # fmt: skip
            break
    else:
        raise AssertionError("no signature with s + n < 2^3072 in 200 tries")
    add("sig as str", False, ("manifest", data), s=good, s_as="str")
    add("sig None", False, ("manifest", data), s=good, s_as="none")
    add("sig as int", False, ("manifest", data), s=good, s_as="int")
    add("digest as str", False, ("manifest", data), s=good, d_as="str")
    add("digest None", False, ("manifest", data), s=good, d_as="none")
    add("digest 31 bytes", False, digest=digest[:31], s=good)
    add("digest 33 bytes", False, digest=digest + b"\x00", s=good)
    add("digest 64 bytes (SHA-512 length)", False, digest=hashlib.sha512(data).digest(), s=good)
    # Malformed keys: ValueError naming the key, whatever the signature.
    add("2048-bit key", "ValueError", ("manifest", data), s=pkcs1(data, keys["rsa2048"]),
        key="rsa2048")  # fmt: skip
    add("2048-bit key zero-padded to 384 bytes", "ValueError", ("manifest", data),
        s=pkcs1(data, keys["rsa2048"]).rjust(K, b"\x00"), key="padded2048")  # fmt: skip
    add("even modulus", "ValueError", ("manifest", data), s=good, key="even")
    add("383-byte key", "ValueError", ("manifest", data), s=good, key="short")
    add("key as str", "ValueError", ("manifest", data), s=good, key="str")
    add("key None", "ValueError", ("manifest", data), s=bytes(K), key="none")

    head = {
        "keys": {name: m.hex() for name, m in mods.items()},
        "ids": {name: hashlib.sha256(m).digest()[:8].hex() for name, m in mods.items()},
    }
    with (folder / "vectors.jsonl").open("w") as f:
        f.write(json.dumps(head) + "\n")
        for line in lines:
            f.write(json.dumps(line) + "\n")
    return lines


@pytest.fixture(scope="module")
def vectors(tmp_path_factory, keys) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("sig")
    return folder / "vectors.jsonl", write_vectors(folder, keys)


def _arg(hexval: str, kind: str):
    b = bytes.fromhex(hexval)
    return {
        "bytes": b,
        "bytearray": bytearray(b),
        "str": hexval,
        "none": None,
        "int": int.from_bytes(b, "big") if b else 0,
    }[kind]


def _cpython_answer(head: dict, line: dict):
    keys = head["keys"]
    if line["key"] == "str":
        n = keys["fleet"]
    elif line["key"] == "none":
        n = None
    else:
        n = bytes.fromhex(keys[line["key"]])
    try:
        return sig.verify(
            n, _arg(line["sig"], line["sig_as"]), _arg(line["digest"], line["digest_as"])
        )
    except ValueError as e:
        assert "key" in str(e), e
        return "ValueError"


def test_node_accepts_only_the_fleet_keys_pkcs1_sha256_signatures(vectors):
    path, lines = vectors
    out = mpharness.run_vectors(CHECK, "check_vectors", "SIG_VECTORS", path)
    n_keys = len(json.loads(path.read_text().splitlines()[0])["keys"])
    assert mpharness.checked_count(out, "SIG") == (len(lines) + n_keys, 0), out[-3000:]


def test_cpython_lamp_sig_gives_the_same_answers(vectors):
    path, lines = vectors
    head = json.loads(path.read_text().splitlines()[0])
    got = [(line["what"], _cpython_answer(head, line)) for line in lines]
    assert got == [(line["what"], line["want"]) for line in lines]


def test_vectors_cover_the_cases_the_node_must_tell_apart(vectors):
    _, lines = vectors
    whats = " | ".join(line["what"] for line in lines)
    for needle in (
        "valid, empty",
        "valid, 100 KB",
        "sig bit",
        "msg bit",
        "other key",
        "SHA-1 DigestInfo",
        "PSS",
        "longer",
        "shorter",
        "sig = n",
        "s + n",
        "all-zero",
        "2048-bit key",
        "trailing garbage",
        "BER",
    ):
        assert needle in whats, needle
    assert sum(line["want"] is True for line in lines) >= 10


def test_cryptography_agrees_with_the_vectors_wants(vectors, keys):
    # The oracle's own verdict on every well-formed vector under the fleet key: the wants
    # above are RFC 8017's, not only lamp.ota.sig's.
    _, lines = vectors
    pub = keys["fleet"].public_key()
    for line in lines:
        if line["key"] != "fleet" or line["sig_as"] != "bytes" or line["digest_as"] != "bytes":
            continue
        digest = bytes.fromhex(line["digest"])
        if len(digest) != 32:
            continue
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        try:
            pub.verify(
                bytes.fromhex(line["sig"]), digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
            )
            ok = True
        except InvalidSignature:
            ok = False
        assert ok is line["want"], line["what"]


def test_key_id_is_the_first_8_bytes_of_sha256_of_the_modulus(keys):
    n = modulus(keys["fleet"])
    assert sig.key_id(n) == hashlib.sha256(n).hexdigest()[:16]
    assert sig.key_id(n) != sig.key_id(modulus(keys["other"]))

# RSASSA-PSS verification with SHA-256 and MGF1-SHA-256 (RFC 8017 sec. 8.1.2, EMSA-PSS-
# VERIFY of sec. 9.1.2), e = 65537, for bench/bench_ota_verify.py only: what PSS would add
# to the node's PKCS#1 v1.5 check (lamp.ota.sig). Not firmware. Runs in MicroPython and CPython.
import hashlib

_E = 65537
_H = 32  # SHA-256 output


def _mgf1(seed, length):
    out = b""
    c = 0
    while len(out) < length:
        out += hashlib.sha256(bytes(seed) + c.to_bytes(4, "big")).digest()
        c += 1
    return out[:length]


def verify(n, sig, digest, salt_len=_H):
    # n: modulus bytes; sig: signature; digest: sha256 of the message -> True/False
    k = len(n)
    m = int.from_bytes(n, "big")
    if len(sig) != k or len(digest) != _H:
        return False
    s = int.from_bytes(sig, "big")
    if s >= m:
        return False
    em_bits = 8 * k - 1  # MicroPython's int has no bit_length(): the top bit of n[0]
    top_bit = 0x80
    while top_bit and not n[0] & top_bit:
        em_bits -= 1
        top_bit >>= 1
    em_len = (em_bits + 7) // 8
    em = pow(s, _E, m).to_bytes(k, "big")[k - em_len :]
    if em_len < _H + salt_len + 2 or em[-1] != 0xBC:
        return False
    masked, h = em[: em_len - _H - 1], em[em_len - _H - 1 : -1]
    top = 0xFF >> (8 * em_len - em_bits)
    if masked[0] & ~top & 0xFF:
        return False
    mask = _mgf1(h, len(masked))
    db = bytearray(len(masked))
    for i in range(len(masked)):
        db[i] = masked[i] ^ mask[i]
    db[0] &= top
    zeros = len(db) - salt_len - 1
    if any(db[:zeros]) or db[zeros] != 1:
        return False
    salt = bytes(db[zeros + 1 :])
    return hashlib.sha256(bytes(8) + bytes(digest) + salt).digest() == bytes(h)

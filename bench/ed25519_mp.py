# Ed25519 signature verification (RFC 8032 sec. 5.1.7) in pure Python, for
# bench/bench_ota_verify.py only: the candidate the fleet's RSA-3072 was measured against.
# Not firmware. Runs in MicroPython and in CPython (where the bench checks it against
# `cryptography` before timing it).
#
# Written to be fair to Ed25519, i.e. as fast as plain Python allows: extended twisted
# Edwards coordinates (Hisil-Wong-Carter-Dawson 2008: add-2008-hwcd-3, dbl-2008-hwcd for
# a = -1), one Straus/Shamir double-scalar loop for [S]B - [k]A, the cofactorless check
# RFC 8032 allows ("sufficient, but not required": encode and compare with R), field
# inversions and square roots by 3-argument pow(), which is C. MicroPython's hashlib has
# no SHA-512 (unix and esp32 ports): a pure-Python FIPS 180-4 SHA-512 is used there.
import hashlib

try:
    from micropython import const
except ImportError:

    def const(x):  # type: ignore[misc]
        return x


_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_D2 = 2 * _D % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_B = (_BX, _BY, 1, _BX * _BY % _P)
_M64 = const(0xFFFFFFFFFFFFFFFF)


# --- SHA-512 (FIPS 180-4 sec. 6.4), only where hashlib has none ---------------------------
_K512 = (
    0x428A2F98D728AE22, 0x7137449123EF65CD, 0xB5C0FBCFEC4D3B2F, 0xE9B5DBA58189DBBC,
    0x3956C25BF348B538, 0x59F111F1B605D019, 0x923F82A4AF194F9B, 0xAB1C5ED5DA6D8118,
    0xD807AA98A3030242, 0x12835B0145706FBE, 0x243185BE4EE4B28C, 0x550C7DC3D5FFB4E2,
    0x72BE5D74F27B896F, 0x80DEB1FE3B1696B1, 0x9BDC06A725C71235, 0xC19BF174CF692694,
    0xE49B69C19EF14AD2, 0xEFBE4786384F25E3, 0x0FC19DC68B8CD5B5, 0x240CA1CC77AC9C65,
    0x2DE92C6F592B0275, 0x4A7484AA6EA6E483, 0x5CB0A9DCBD41FBD4, 0x76F988DA831153B5,
    0x983E5152EE66DFAB, 0xA831C66D2DB43210, 0xB00327C898FB213F, 0xBF597FC7BEEF0EE4,
    0xC6E00BF33DA88FC2, 0xD5A79147930AA725, 0x06CA6351E003826F, 0x142929670A0E6E70,
    0x27B70A8546D22FFC, 0x2E1B21385C26C926, 0x4D2C6DFC5AC42AED, 0x53380D139D95B3DF,
    0x650A73548BAF63DE, 0x766A0ABB3C77B2A8, 0x81C2C92E47EDAEE6, 0x92722C851482353B,
    0xA2BFE8A14CF10364, 0xA81A664BBC423001, 0xC24B8B70D0F89791, 0xC76C51A30654BE30,
    0xD192E819D6EF5218, 0xD69906245565A910, 0xF40E35855771202A, 0x106AA07032BBD1B8,
    0x19A4C116B8D2D0C8, 0x1E376C085141AB53, 0x2748774CDF8EEB99, 0x34B0BCB5E19B48A8,
    0x391C0CB3C5C95A63, 0x4ED8AA4AE3418ACB, 0x5B9CCA4F7763E373, 0x682E6FF3D6B2B8A3,
    0x748F82EE5DEFB2FC, 0x78A5636F43172F60, 0x84C87814A1F0AB72, 0x8CC702081A6439EC,
    0x90BEFFFA23631E28, 0xA4506CEBDE82BDE9, 0xBEF9A3F7B2C67915, 0xC67178F2E372532B,
    0xCA273ECEEA26619C, 0xD186B8C721C0C207, 0xEADA7DD6CDE0EB1E, 0xF57D4F7FEE6ED178,
    0x06F067AA72176FBA, 0x0A637DC5A2C898A6, 0x113F9804BEF90DAE, 0x1B710B35131C471B,
    0x28DB77F523047D84, 0x32CAAB7B40C72493, 0x3C9EBE0A15C9BEBC, 0x431D67C49C100D4C,
    0x4CC5D4BECB3E42B6, 0x597F299CFC657E2A, 0x5FCB6FAB3AD6FAEC, 0x6C44198C4A475817,
)  # fmt: skip
_H512 = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)  # fmt: skip


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M64


def _sha512_py(msg):
    n = len(msg)
    msg = bytes(msg) + b"\x80" + bytes((111 - n) % 128) + (8 * n).to_bytes(16, "big")
    h = list(_H512)
    k = _K512
    for off in range(0, len(msg), 128):
        w = [int.from_bytes(msg[off + 8 * i : off + 8 * i + 8], "big") for i in range(16)]
        for i in range(16, 80):
            a, b = w[i - 15], w[i - 2]
            s0 = _rotr(a, 1) ^ _rotr(a, 8) ^ (a >> 7)
            s1 = _rotr(b, 19) ^ _rotr(b, 61) ^ (b >> 6)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & _M64)
        a, b, c, d, e, f, g, hh = h
        for i in range(80):
            t1 = hh + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ (~e & g))
            t1 = (t1 + k[i] + w[i]) & _M64
            t2 = (_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))
            hh, g, f, e = g, f, e, (d + t1) & _M64
            d, c, b, a = c, b, a, (t1 + t2) & _M64
        h = [(x + y) & _M64 for x, y in zip(h, (a, b, c, d, e, f, g, hh))]  # noqa: B905
    return b"".join(x.to_bytes(8, "big") for x in h)


def sha512(msg):
    if hasattr(hashlib, "sha512"):
        return hashlib.sha512(msg).digest()
    return _sha512_py(msg)


# --- the curve ---------------------------------------------------------------------------


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p):
    x1, y1, z1, _ = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _decode(s):
    # RFC 8032 sec. 5.1.3 -> (x, y, 1, xy), or None if s is no point's encoding
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vx2 = v * x * x % _P
    if vx2 == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif vx2 != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _encode(p):
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x = x * zi % _P
    y = y * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def verify(public, msg, sig):
    # public: 32 bytes; sig: 64 bytes (R || S) -> True/False, RFC 8032 sec. 5.1.7
    if len(public) != 32 or len(sig) != 64:
        return False
    a = _decode(public)
    if a is None:
        return False
    r = sig[:32]
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False
    k = int.from_bytes(sha512(bytes(r) + bytes(public) + bytes(msg)), "little") % _L
    # [S]B + [k](-A) by one shared chain of doublings (Straus)
    neg = ((_P - a[0]) % _P, a[1], a[2], (_P - a[3]) % _P)
    both = _add(_B, neg)
    q = (0, 1, 1, 0)
    for i in range(252, -1, -1):  # s, k < L < 2^253
        q = _double(q)
        bs = (s >> i) & 1
        bk = (k >> i) & 1
        if bs and bk:
            q = _add(q, both)
        elif bs:
            q = _add(q, _B)
        elif bk:
            q = _add(q, neg)
    return _encode(q) == bytes(r)

# The fleet's signature on an OTA bundle's manifest (docs/ota.md, issue 7): RSA-3072,
# RSASSA-PKCS1-v1_5 with SHA-256 and e = 65537 (RFC 8017 sec. 8.2.2, EMSA-PKCS1-v1_5 of
# sec. 9.2). The node holds the public modulus only. Chosen by measurement
# (bench/bench_ota_verify.py): with e = 65537 a verify is 17 modular multiplications done
# in C by pow(), where a pure-Python Ed25519 verify runs its curve and SHA-512 in bytecode.
#
# The check re-encodes the one message the fleet key would have signed and compares the
# whole of it with what the signature opens to (RFC 8017 sec. 8.2.2 steps 3-4), never
# parsing the padding: parsers that accepted garbage after the hash (Bleichenbacher's 2006
# e = 3 forgery) or read DigestInfo lengths loosely (BERserk, 2014) were forged. Everything
# here is public (key, signature, digest), so the comparison need not be constant-time.
import hashlib
from binascii import hexlify

try:
    from micropython import const
except ImportError:  # CPython: the controller checks bundles with this same code

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


KEY_BYTES = const(384)  # a 3072-bit modulus, big-endian; signatures are this long too
_E = const(65537)
_DIGEST = const(32)
# DER of DigestInfo{ AlgorithmIdentifier{ id-sha256, NULL }, OCTET STRING(32) }, the
# prefix RFC 8017 sec. 9.2 note 1 gives for SHA-256; the digest follows it.
_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
_TAIL = const(52)  # 0x00 separator + DigestInfo prefix (19) + digest (32)


def key_id(n):
    # -> 16 hex digits (the first 8 bytes of sha256 of the modulus): a node reports the
    # key it holds and a manifest names the key that signed it, without sending 384 bytes.
    return hexlify(hashlib.sha256(n).digest()[:8]).decode()


def _modulus(n):
    # -> n as an int. A key that is not exactly 3072 bits (a 2048-bit key, or a shorter
    # one zero-padded to 384 bytes) or is even is a provisioning mistake, not an attack
    # to shrug off: ValueError naming the key.
    if isinstance(n, (bytes, bytearray)) and len(n) == KEY_BYTES and n[0] & 0x80 and n[-1] & 1:
        return int.from_bytes(n, "big")
    if isinstance(n, (bytes, bytearray)):
        got = "%d bytes, key %s" % (len(n), key_id(n))
    else:
        got = type(n).__name__
    raise ValueError(
        "sig: key: expected a 3072-bit RSA modulus of %d bytes, got %s" % (KEY_BYTES, got)
    )


def _encoded(digest):
    # EM = 0x00 0x01 PS 0x00 DigestInfo digest, PS all 0xFF to fill KEY_BYTES (sec. 9.2
    # step 5), built in one buffer.
    em = bytearray(b"\xff" * KEY_BYTES)
    em[0] = 0
    em[1] = 1
    em[KEY_BYTES - _TAIL] = 0
    em[KEY_BYTES - _TAIL + 1 : KEY_BYTES - _DIGEST] = _INFO
    em[KEY_BYTES - _DIGEST :] = digest
    return em


def verify(n, sig, digest):
    # n: the fleet modulus (KEY_BYTES, big-endian); sig: the signature; digest: sha256 of
    # the signed bytes. -> True only for a signature by n's key over exactly that digest.
    # Any malformed sig or digest is False; only a malformed key raises (ValueError).
    m = _modulus(n)
    if not isinstance(sig, (bytes, bytearray)) or not isinstance(digest, (bytes, bytearray)):
        return False
    if len(sig) != KEY_BYTES or len(digest) != _DIGEST:  # sec. 8.2.2 step 1
        return False
    s = int.from_bytes(sig, "big")
    if s >= m:  # sec. 5.2.2 step 1: s + n would open to the same message otherwise
        return False
    return pow(s, _E, m).to_bytes(KEY_BYTES, "big") == _encoded(digest)

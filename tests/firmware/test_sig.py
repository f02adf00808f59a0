# The OTA signature check on the node (lamp.ota.sig, RSA-3072 PKCS#1 v1.5 / SHA-256, docs/ota.md)
# with one fixed vector: the public key and signature below were made once with CPython's
# `cryptography` by a throwaway key (its private half discarded). The vectors of every kind,
# made fresh each run, are tests/test_ota_sig.py's; these are the checks that need no oracle.
import gc
import hashlib
from binascii import unhexlify

from fw import raises
from lamp.ota.sig import KEY_BYTES, key_id, verify

MSG = b"lanterna 1.4.0 manifest"
KEY_ID = "57581778ba85deb3"
N = unhexlify(
    "98c05f5f4a479e4c3dab2e6364879b5103cba5d4aecaf6a2ccc0974d04d2f3673d736a42a95ddda069837f8c"
    "64644664383c53d94f7420461fe66f557116d9bb77fb72111304919fce9425530cad886ad835a40d887ec94f"
    "091ac5fc31ca01530ebb5fc8dbb780fa29dc554205e8214480634ebd5eeb5ec1920b73b3fd491f5d12a75e3e"
    "96d9d6bd26a5e4fbf3dd6fc82450f96c4df9a8c1863bd936954bcd3a38fa31cc493abd4504030fe5bb831f7e"
    "9ea37e5765fe2e1c7b1a6a06baeee4d66859c0ef28b043eb376a824c717b6da946e2985b18f3e92a6b2e1d38"
    "39dd3592dfdae209df35d0b5777183e52874dc8217faf616d9736fc27f38b828f336aa075995c12bb1ede035"
    "cd2955aa9d3a7cc71feeca18c7b2077539a7f2d2626bfed94fcc19cea24ddac6047bb59fb3062172f27dbe61"
    "9c18f3cc7f91f5db63e1c8cdb8cedb283699062dd4a2f3a89c4a7e030d29950938edba26072aabd85d3325be"
    "7d9ed79f9f4b4c60b39defb4133d8a5d79e33e50dc3e4f5a65bf59f1b7397ea5"
)
SIG = unhexlify(
    "48594b58ec512dbe62ff6e69f5aff812289349444ef05c211f3523f69583d965bbe4e3ed4880e1d610d7eed2"
    "aac66b598dd6c34805d2a10fbcfce205c173b597084d210103c5689089b23d3d55d37e70955f15151f81ed89"
    "196b87a92431b3247d96bffdadf3c5574dadb7b7a774369a22ea579330de8cb88b5f79499f6eab315b9fd5a2"
    "e3c4ad483f2b9b0ec2339c0fe9b6e4bc05b2950f5829cddc5d99236ce8841fc553f6a825e62de7819da76674"
    "5d0298bbc65fbbe0ff60fc5035e9df0fd427eac6e791b6393e13f9d80586e14c59a9346366168c9d5461b9ba"
    "6fcd28c0f34cebe7c8cacd68c02bd089f0187f00be3c0aef7c10191b013e4f29851db54ac5b4f769ccaddc92"
    "72bf5fbb6c6fbff82a593270b731361036a05a9f91c52aecc7307b6080a292eb747c050230f1ec161178b774"
    "29a5540f4f3ea6f1a2fc3796e60dd5a98d97d7be902b10cf80f071e60dac707e7cf83a42adb93ed9bfddf89e"
    "4e76518ee02c0caefa8cad8b37d777fb802463f15e3f90be2a7743c4a14feb7e"
)

DIGEST = hashlib.sha256(MSG).digest()


def _flip(b, i):
    out = bytearray(b)
    out[i // 8] ^= 0x80 >> (i % 8)
    return bytes(out)


def test_the_fleet_signature_verifies():
    assert verify(N, SIG, DIGEST) is True
    assert verify(bytearray(N), bytearray(SIG), bytearray(DIGEST)) is True


def test_any_flipped_bit_of_signature_or_message_fails():
    for i in (0, 1, 8 * KEY_BYTES // 2, 8 * KEY_BYTES - 1):
        assert verify(N, _flip(SIG, i), DIGEST) is False, i
    for i in (0, 8 * len(MSG) - 1):
        assert verify(N, SIG, hashlib.sha256(_flip(MSG, i)).digest()) is False, i
    assert verify(N, SIG, hashlib.sha256(MSG + b" ").digest()) is False


def test_a_signature_not_below_n_fails_even_when_it_opens_to_the_message():
    s = int.from_bytes(SIG, "big")
    n = int.from_bytes(N, "big")
    assert s + n < 1 << (8 * KEY_BYTES)  # chosen so: s + n is another 384-byte string
    assert verify(N, (s + n).to_bytes(KEY_BYTES, "big"), DIGEST) is False
    for v in (n, n + 1, (1 << (8 * KEY_BYTES)) - 1):
        assert verify(N, v.to_bytes(KEY_BYTES, "big"), DIGEST) is False
    for v in (0, 1, n - 1):
        assert verify(N, v.to_bytes(KEY_BYTES, "big"), DIGEST) is False


def test_malformed_signature_or_digest_is_false_not_an_exception():
    for sig in (b"", SIG[1:], SIG[:-1], b"\x00" + SIG, SIG + b"\x00", None, 7, "ab" * 384):
        assert verify(N, sig, DIGEST) is False, sig
    for d in (b"", DIGEST[:31], DIGEST + b"\x00", hashlib.sha1(MSG).digest(), None, "x" * 32):
        assert verify(N, SIG, d) is False, d
    assert verify(N, [0] * KEY_BYTES, DIGEST) is False


def test_a_malformed_key_is_a_value_error_naming_the_key():
    for key, got in (
        (N[128:], "got 256 bytes, key %s" % key_id(N[128:])),
        (bytes(128) + N[128:], "got 384 bytes"),  # 2048 bits, zero-padded
        (N[:-1] + bytes([N[-1] ^ 1]), "got 384 bytes"),  # even: not an RSA modulus
        (N + b"\x00", "got 385 bytes"),
        (N.hex(), "got str"),
        (None, "got NoneType"),
    ):
        e = raises(ValueError, verify, key, SIG, DIGEST)
        assert str(e).startswith("sig: key: expected a 3072-bit RSA modulus"), e
        assert got in str(e), (str(e), got)


def test_key_id_names_the_key_in_16_hex_digits():
    assert key_id(N) == KEY_ID == hashlib.sha256(N).digest()[:8].hex()
    assert key_id(bytearray(N)) == KEY_ID
    assert key_id(_flip(N, 3)) != KEY_ID


def test_heap_of_one_verify():
    gc.collect()
    a0 = gc.mem_alloc()
    ok = verify(N, SIG, DIGEST)
    a1 = gc.mem_alloc()  # no collection: everything verify() allocated, garbage included
    gc.collect()
    print("SIG verify_alloc=%d" % (a1 - a0))
    assert ok
    assert a1 - a0 < 16 * KEY_BYTES  # 3 KB on the 64-bit unix port

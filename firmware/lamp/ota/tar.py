# The ustar stream of a bundle (docs/ota.md, "Bundle format"), read as the controller's
# reader (lanterna.ota.bundle) reads it: one 512-byte header per member, the member's
# bytes padded to the block, two zero blocks at the end. lamp.ota.install walks the
# stream; this module checks each header and knows the layout's sizes.
from lamp.ota import (
    R_UNSUPPORTED,
    OtaError,
)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


BLOCK = const(512)


def pad(n):
    return -n % BLOCK


def total(mlen, files):
    # the bundle's size: manifest and sig members, the payload, the end-of-archive marker
    n = 5 * BLOCK + mlen + pad(mlen)
    for f in files:
        n += BLOCK + f["size"] + pad(f["size"])
    return n


def octal(h, a, b, what):
    # As the controller's reader: trailing NULs and spaces, then leading spaces, stripped;
    # what is left must be octal digits, at least one.
    while b > a and h[b - 1] in (0, 32):
        b -= 1
    while a < b and h[a] == 32:
        a += 1
    v = 0
    for i in range(a, b):
        c = h[i] - 48
        if not 0 <= c <= 7:
            a = b
            break
        v = v * 8 + c
    if a == b:
        raise OtaError(R_UNSUPPORTED, "not a bundle: %s is not an octal number" % what)
    return v


def text(b):
    try:
        return repr(bytes(b).decode())
    except UnicodeError:
        return repr(bytes(b))


def header(h, k):
    # One ustar header block `h` of member k (0-based), checked as the controller's
    # reader checks it: -> (name bytes, size). OtaError(R_UNSUPPORTED) says what is wrong.
    if h[257:263] != b"ustar\x00" or h[263:265] != b"00":
        raise _bad(k, "has no ustar header")
    want = octal(h, 148, 156, "member %d's header checksum" % (k + 1))
    if want != sum(h) - sum(h[148:156]) + 8 * 32:
        raise _bad(k, "header checksum does not match")
    end = 0
    while end < 100 and h[end]:
        end += 1
    name = bytes(h[:end])
    if h[156] != 48:  # "0": a regular file
        raise _bad(k, "%s is not a regular file" % text(name))
    if any(h[345:500]):
        raise _bad(k, "%s uses a name prefix" % text(name))
    return name, octal(h, 124, 136, "the size of member %d %s" % (k + 1, text(name)))


def _bad(k, what):
    return OtaError(R_UNSUPPORTED, "not a bundle: member %d %s" % (k + 1, what))

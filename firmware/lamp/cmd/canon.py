# The canonical form of a command and its MAC (docs/commands.md), shared by the handler
# (lamp.cmd.handler) and by tests: keys sorted, "," and ":" with no whitespace, ASCII
# only, the bytes CPython's json.dumps(obj, sort_keys=True, separators=(",", ":")) gives.
# Only values whose JSON both sides write alike are allowed: no floats (1.0 vs 1e0 vs 1),
# and strings of printable ASCII without '"' and '\' (escapes have several spellings).
import hashlib

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


MAX_DEPTH = const(16)  # containers nested deeper than this are malformed (stack, heap)
_BLOCK = const(64)  # SHA-256 block size (RFC 2104 "B")


def _text(s):
    b = s.encode()
    return (not b or (min(b) >= 0x20 and max(b) <= 0x7E)) and '"' not in s and "\\" not in s


def _canon(v, out, depth=0):
    # Writes v's canonical form through out(str); ValueError if v has none.
    if v is None:
        out("null")
    elif v is True:
        out("true")
    elif v is False:
        out("false")
    elif isinstance(v, int):
        out("%d" % v)
    elif isinstance(v, str):
        if not _text(v):
            raise ValueError("string not printable ASCII, or holds a quote or backslash")
        out('"')
        out(v)
        out('"')
    elif isinstance(v, (dict, list)):
        if depth >= MAX_DEPTH:
            raise ValueError("nested deeper than %d" % MAX_DEPTH)
        if isinstance(v, list):
            out("[")
            for i, x in enumerate(v):
                if i:
                    out(",")
                _canon(x, out, depth + 1)
            out("]")
            return
        out("{")
        first = True
        for k in sorted(v):
            if not isinstance(k, str) or not _text(k):
                raise ValueError("key not printable ASCII, or holds a quote or backslash")
            if not first:
                out(",")
            first = False
            out('"')
            out(k)
            out('":')
            _canon(v[k], out, depth + 1)
        out("}")
    else:
        raise ValueError("%s has no canonical form" % type(v).__name__)


def canonical(obj):
    # -> bytes; the handler streams the same form into the MAC instead of building it.
    parts = []  # type: list
    _canon(obj, parts.append)
    return "".join(parts).encode()


# HMAC-SHA256 (RFC 2104): MicroPython has no hmac module.


def _pads(key):
    # -> (K xor ipad, K xor opad), K the key zero-padded to the block (hashed if longer)
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _feed(h):
    # MicroPython's hashes take a str as a buffer (no copy); CPython's want bytes.
    try:
        h.update("")
        return h.update
    except TypeError:
        return lambda s: h.update(s.encode())


def hmac_sha256(key, msg):
    ipad, opad = _pads(key)
    h = hashlib.sha256(ipad)
    h.update(msg)
    return hashlib.sha256(opad + h.digest()).digest()


def equal(a, b):
    # Every byte is compared whatever the first difference, so the time taken tells a
    # forger nothing about how much of a MAC was right.
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0

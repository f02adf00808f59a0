# CoAP message codec (RFC 7252 sec. 3): the numbers of the protocol's registries, a
# parser that never raises on hostile input (it reports what is wrong instead), and an
# encoder that writes a response into a caller's preallocated buffer. lamp.net.coap is the
# server on top; this module allocates only the parsed request's small fields.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


# Only what parse() and build() need, all private: an underscore const costs no RAM
# and no name at run time. The names a handler uses (codes, methods) are lamp.net.coap's.
_BAD_OPTION = const(0x82)  # 4.02
_PROXYING_NOT_SUPPORTED = const(0xA5)  # 5.05

# Option numbers (sec. 5.10, 12.2; RFC 7959 sec. 2.1, 4). Odd numbers are critical.
_URI_HOST = const(3)
_URI_PORT = const(7)
_URI_PATH = const(11)
_CONTENT_FORMAT = const(12)
_URI_QUERY = const(15)
_ACCEPT = const(17)
_BLOCK2 = const(23)
_BLOCK1 = const(27)
_SIZE2 = const(28)
_PROXY_URI = const(35)
_PROXY_SCHEME = const(39)
_SIZE1 = const(60)

_NO = const(-1)  # option absent
FORMAT = const(-1)  # Msg.err: a message format error, to be rejected (sec. 4.2, 4.3)


class Msg:
    # One parsed datagram. token is bytes (0-8), payload a bytes slice (b"" when absent);
    # cf/accept/block1/block2/size1 are ints, -1 when absent. err: 0, FORMAT, or the
    # response code the request earns by its options (4.02 Bad Option with the option
    # number in opt, 5.05 Proxying Not Supported).
    def __init__(self, typ, code, mid):
        self.type = typ
        self.code = code
        self.mid = mid
        self.token = b""
        self.err = 0
        self.opt = 0
        self.path = ""
        self.query = None  # type: list | None
        self.cf = self.accept = self.block1 = self.block2 = self.size1 = _NO
        self.payload = b""


def _uint(data, i, n):
    v = 0
    for k in range(i, i + n):
        v = (v << 8) | data[k]
    return v


def _ext(data, i, end, v):
    # Extended option delta/length (sec. 3.1): 13 -> one more byte + 13, 14 -> two more
    # bytes + 269, 15 reserved. -> (value, next index); value -1 for an error.
    if v < 13:
        return v, i
    if v == 13 and i < end:
        return data[i] + 13, i + 1
    if v == 14 and i + 1 < end:
        return ((data[i] << 8) | data[i + 1]) + 269, i + 2
    return -1, i


def parse(data):
    # -> Msg, or None when not even the 4-byte header is CoAP version 1 (sec. 3: an
    # unknown version is silently ignored). Otherwise type and mid are always valid, so
    # the server can reject a bad CON with a matching RST (sec. 4.2).
    end = len(data)
    if end < 4 or data[0] >> 6 != 1:
        return None
    m = Msg((data[0] >> 4) & 3, data[1], (data[2] << 8) | data[3])
    tkl = data[0] & 15
    # Token lengths 9-15 are reserved: a message format error (sec. 3).
    if tkl > 8 or 4 + tkl > end:
        m.err = FORMAT
        return m
    m.token = bytes(data[4 : 4 + tkl])
    i = 4 + tkl
    num = 0
    seen = 0  # bits of the non-repeatable critical options already met (sec. 5.4.5)
    while i < end:
        b = data[i]
        i += 1
        if b == 0xFF:
            # A marker followed by a zero-length payload is a format error (sec. 3).
            if i == end:
                m.err = FORMAT
            else:
                m.payload = bytes(data[i:end])
            break
        delta, i = _ext(data, i, end, b >> 4)
        length, i = _ext(data, i, end, b & 15)
        if delta < 0 or length < 0 or i + length > end:
            m.err = FORMAT  # reserved nibble 15, or the option runs past the datagram
            break
        num += delta
        if num > 0xFFFF:  # option numbers are 16 bits (sec. 3.1, 12.2)
            m.err = FORMAT
            break
        if m.err == 0:
            _option(m, num, data, i, length, seen)
            if num in (_ACCEPT, _BLOCK2, _BLOCK1):
                seen |= 1 << (num & 15)
        i += length
    return m


def _option(m, num, data, i, n, seen):
    # Record one option (sec. 5.4); an option outside its length range, or a repeated
    # non-repeatable one, is treated as unrecognised (sec. 5.4.3, 5.4.5).
    bad = False
    if num == _URI_PATH or num == _URI_QUERY:
        try:
            s = str(data[i : i + n], "utf-8")
        except Exception:  # invalid UTF-8 (sec. 3.2: strings are UTF-8)
            bad = True
        else:
            if num == _URI_PATH:
                m.path += "/" + s
            elif m.query is None:
                m.query = [s]
            else:
                m.query.append(s)
    elif num in (_CONTENT_FORMAT, _ACCEPT, _BLOCK2, _BLOCK1, _SIZE1):
        bad = n > (2 if num < _BLOCK2 else 4 if num == _SIZE1 else 3)
        bad = bad or (num != _CONTENT_FORMAT and num != _SIZE1 and seen & (1 << (num & 15)))
        if not bad:
            v = _uint(data, i, n)
            if num == _CONTENT_FORMAT:
                m.cf = v
            elif num == _ACCEPT:
                m.accept = v
            elif num == _BLOCK2:
                m.block2 = v
            elif num == _BLOCK1:
                m.block1 = v
            else:
                m.size1 = v
    elif num == _PROXY_URI or num == _PROXY_SCHEME:
        m.err = _PROXYING_NOT_SUPPORTED  # sec. 5.7.2: we are no proxy
    elif num & 1 and num != _URI_HOST and num != _URI_PORT:
        bad = True  # critical and unknown to us; Uri-Host/-Port: we are the only host
    if bad and num & 1:
        m.err = _BAD_OPTION  # sec. 5.4.1
        m.opt = num


def build(buf, typ, code, mid, token, cf, block2, block1, size2, size1, payload):
    # Write one message into `buf` -> its length. cf: None when absent; block2, block1,
    # size2, size1: -1 when absent; payload: bytes-like, may be empty.
    n = len(token)
    buf[0] = 0x40 | (typ << 4) | n  # version 1 (sec. 3)
    buf[1] = code
    buf[2] = mid >> 8
    buf[3] = mid & 0xFF
    buf[4 : 4 + n] = token
    i = 4 + n
    # Options in ascending order (sec. 3.1), each as a delta from the one before.
    p = 0
    if cf is not None:
        i = _put(buf, i, _CONTENT_FORMAT, cf)
        p = _CONTENT_FORMAT
    if block2 >= 0:
        i = _put(buf, i, _BLOCK2 - p, block2)
        p = _BLOCK2
    if block1 >= 0:
        i = _put(buf, i, _BLOCK1 - p, block1)
        p = _BLOCK1
    if size2 >= 0:
        i = _put(buf, i, _SIZE2 - p, size2)
        p = _SIZE2
    if size1 >= 0:
        i = _put(buf, i, _SIZE1 - p, size1)
    k = len(payload)
    if k:
        buf[i] = 0xFF  # the marker only before a non-empty payload (sec. 3)
        buf[i + 1 : i + 1 + k] = payload
        i += 1 + k
    return i


def _put(buf, i, d, v):
    # One uint option (sec. 3.2: the fewest bytes, zero is empty) at option delta d.
    n = 0 if v == 0 else 1 if v < 0x100 else 2 if v < 0x10000 else 3 if v < 0x1000000 else 4
    j = i + 1
    if d < 13:
        buf[i] = (d << 4) | n
    else:  # one extended byte: delta 13..268 covers every option we send
        buf[i] = 0xD0 | n
        buf[j] = d - 13
        j += 1
    for k in range(n - 1, -1, -1):
        buf[j] = (v >> (8 * k)) & 0xFF
        j += 1
    return j

# CoAP server over UDP (RFC 7252) with block-wise transfers (RFC 7959) and
# /.well-known/core (RFC 6690), small enough for the node's heap. The codec is
# lamp.net.coap_msg; this module is the message layer (piggybacked ACKs, RST for what it
# cannot process, duplicate detection) and the request layer (Block1 reassembly into one
# bounded body, Block2 slicing of the handler's answer). One application handler
# answers every request; see docs/coap.md for what is supported and the limits.
import os
import socket

from lamp import clock, log
from lamp.net import aio
from lamp.net import coap_msg as M

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


# Methods and response codes, c.dd as (c << 5) | dd (RFC 7252 sec. 12.1.1, 12.1.2):
# the names a handler uses.
GET = const(1)
POST = const(2)
PUT = const(3)
DELETE = const(4)
CREATED = const(0x41)
DELETED = const(0x42)
CHANGED = const(0x44)
CONTENT = const(0x45)
BAD_REQUEST = const(0x80)
UNAUTHORIZED = const(0x81)
BAD_OPTION = const(0x82)
FORBIDDEN = const(0x83)
NOT_FOUND = const(0x84)
METHOD_NOT_ALLOWED = const(0x85)
NOT_ACCEPTABLE = const(0x86)
PRECONDITION_FAILED = const(0x8C)
REQUEST_ENTITY_TOO_LARGE = const(0x8D)
UNSUPPORTED_CONTENT_FORMAT = const(0x8F)
INTERNAL_SERVER_ERROR = const(0xA0)
SERVICE_UNAVAILABLE = const(0xA3)
# Ours only (private consts cost no RAM).
_CONTINUE = const(0x5F)  # 2.31 (RFC 7959 sec. 2.9.1)
_INCOMPLETE = const(0x88)  # 4.08 Request Entity Incomplete (RFC 7959 sec. 2.9.2)
_LINK_FORMAT = const(40)  # application/link-format (RFC 6690 sec. 7.2)
_CON = const(0)  # message types (sec. 3)
_NON = const(1)
_ACK = const(2)
_RST = const(3)

# EXCHANGE_LIFETIME (sec. 4.8.2, default transmission parameters): how long a message ID
# from one endpoint can come back as a retransmission. Node time (lamp.clock): in a
# warped sim the window shrinks with everything else.
_LIFETIME_MS = const(247000)
_CACHE_N = const(8)  # remembered exchanges (sec. 4.5), oldest dropped first
_CACHE_BYTES = const(2048)  # and the response bytes they may hold together
_SLACK = const(64)  # header, token (8) and our options around one block of payload
# The largest request we read: a 1024-byte block (SZX 6) and its options, whatever our
# own SZX; clients pick their Block1 size before they hear ours (RFC 7959 sec. 2.3).
_MAX_REQUEST = const(1152)
_EAGAIN = const(11)


class CoapError(Exception):
    # Raised by a handler: answer `code` with `message` as diagnostic payload (sec. 5.5.2).
    def __init__(self, code, message=""):
        super().__init__(code, message)
        self.code = code
        self.message = message


class CoapServer:
    def __init__(self, handler, resources, port=5683, host="0.0.0.0", szx=6, max_body=8192):
        # handler(method, path, payload, content_format, accept, query)
        #   -> (code, payload, content_format or None); content_format/accept are None
        #   when absent, query a list of str (empty when absent). payload is bytes, or a
        #   bytearray when it was reassembled from Block1 blocks (saves a copy).
        # resources: ((path, link attributes), ...) for /.well-known/core.
        # szx: our block size, 16 << szx bytes (RFC 7959 sec. 2.2), 0..6.
        if not 0 <= szx <= 6:
            raise ValueError("szx must be 0..6")
        self.handler = handler
        self.port = port
        self.host = host
        self.szx = szx
        self.max_body = max_body
        self._tx = bytearray((16 << szx) + _SLACK)  # every response is built here
        # RFC 6690 sec. 2: </path>;attr;attr,</path2> (content-format 40)
        self._core = ",".join(
            ("<%s>;%s" % (p, a)) if a else ("<%s>" % p) for p, a in resources
        ).encode()
        self._cache = []  # type: list  # (addr, mid, t_ms, response or None), oldest first
        self._cached = 0  # response bytes held by _cache
        self._budget = max(_CACHE_BYTES, len(self._tx))
        self._b1 = None  # type: list | None  # Block1 upload: [addr, method, path, body, t_ms]
        self._mid = int.from_bytes(os.urandom(2), "big")  # sec. 4.4: not predictable
        self._r_b1 = -1  # Block1 option to echo in the response being built
        self._r_size1 = -1
        self.stats = {"received": 0, "bad": 0, "duplicates": 0, "sent": 0}
        self.sock = None

    async def run(self):
        # Serve until cancelled. One datagram per wake-up: a flood never starves the other
        # tasks (the poller hands control round between readable waits).
        addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_DGRAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
            s.setblocking(False)
            self.sock = s
            log.info("coap", "listening on %s:%d", self.host, self.port)
            while True:
                await aio.readable(s)
                self._serve_one(s)
        finally:
            self.sock = None
            s.close()

    def _serve_one(self, s):
        try:
            # One byte more than the largest request we take: a longer one is detected
            # instead of silently truncated (recvfrom cuts a datagram to the size asked).
            data, addr = s.recvfrom(_MAX_REQUEST + 1)
        except OSError as e:
            if e.errno != _EAGAIN:
                self.stats["bad"] += 1  # a pending socket error; reading cleared it
            return
        try:
            resp = self.handle(data, addr)
            if resp is not None:
                s.sendto(resp, addr)
                self.stats["sent"] += 1
        except Exception as e:  # never let one datagram stop the server
            self.stats["bad"] += 1
            log.warn("coap", "datagram dropped: %r", e)

    def handle(self, data, addr):
        # One datagram from `addr` -> the response datagram (bytes) or None.
        st = self.stats
        st["received"] += 1
        m = M.parse(data)
        if m is None:  # not CoAP 1: silently ignored (sec. 3)
            st["bad"] += 1
            return None
        if m.type >= _ACK:  # we send no CON, so no ACK or RST can match (sec. 4.2, 4.3)
            return None
        now = clock.mono_ms()
        e = self._lookup(addr, m.mid, now)
        if e is not None:  # sec. 4.5: same answer again, never processed twice
            st["duplicates"] += 1
            return e[3]  # None for a NON: ignored
        # Reject (RST for a CON, silence for a NON, sec. 4.2/4.3): format errors, an empty
        # message with a token or bytes after the header (sec. 4.1), a CoAP ping (empty
        # CON, sec. 4.3), a response or reserved code class sent to a server, a critical
        # option we do not know in a NON (sec. 5.4.1).
        big = len(data) > _MAX_REQUEST  # cut by recvfrom: parse errors are no news
        if m.code == 0 or m.code >> 5 or m.err == M.FORMAT and not big:
            if m.code != 0 or m.err or len(data) != 4:
                st["bad"] += 1
            return self._rst(m) if m.type == _CON else None
        if m.err == BAD_OPTION and m.type == _NON and not big:
            st["bad"] += 1
            return None
        self._r_b1 = self._r_size1 = -1
        b1 = self._b1
        if b1 is not None and now - b1[4] > _LIFETIME_MS:
            self._b1 = None  # an abandoned upload gives its buffer back
        if big:
            # Too large for us: 4.13 with a Block1 option naming the block size we take,
            # so the client can go block-wise (RFC 7959 sec. 2.9.3).
            code, payload, cf = REQUEST_ENTITY_TOO_LARGE, b"", None
            self._r_b1 = self.szx
        else:
            code, payload, cf = self._respond(m, addr, now)
        resp = self._build(m, code, payload, cf)
        self._remember(addr, m.mid, now, resp if m.type == _CON else None)
        return resp

    def _rst(self, m):
        # An empty RST with the rejected message's ID (sec. 4.2); not remembered.
        n = M.build(self._tx, _RST, 0, m.mid, b"", None, -1, -1, -1, -1, b"")
        return bytes(memoryview(self._tx)[:n])

    def _lookup(self, addr, mid, now):
        c = self._cache
        while c and now - c[0][2] > _LIFETIME_MS:
            self._drop()
        for e in c:
            if e[1] == mid and e[0] == addr:
                return e
        return None

    def _remember(self, addr, mid, now, resp):
        n = len(resp) if resp is not None else 0
        while self._cache and (len(self._cache) >= _CACHE_N or self._cached + n > self._budget):
            self._drop()
        self._cache.append((addr, mid, now, resp))
        self._cached += n

    def _drop(self):
        e = self._cache.pop(0)
        if e[3] is not None:
            self._cached -= len(e[3])

    def _respond(self, m, addr, now):
        # -> (code, payload, content_format) for a request; a CoapError from the handler,
        # or our own, becomes its code with the message as diagnostic payload (sec. 5.5.2).
        try:
            if m.err:  # 4.02 for an option (sec. 5.4.1), 5.05: no proxy (sec. 5.7.2)
                raise CoapError(m.err, "option %d" % m.opt if m.opt else "")
            # RFC 7959 sec. 2.2: SZX 7 is reserved, 4.00 in a request
            if m.block1 >= 0 and m.block1 & 7 == 7 or m.block2 >= 0 and m.block2 & 7 == 7:
                raise CoapError(BAD_REQUEST, "szx 7")
            if not GET <= m.code <= DELETE:  # sec. 5.8: unknown method
                raise CoapError(METHOD_NOT_ALLOWED)
            path = m.path or "/"
            if path == "/.well-known/core":
                if m.code != GET:
                    raise CoapError(METHOD_NOT_ALLOWED)
                return CONTENT, self._core, _LINK_FORMAT
            body = m.payload
            if m.block1 >= 0:
                body = self._block1(m, addr, now)
                if body is None:
                    return _CONTINUE, b"", None
            r = self.handler(
                m.code,
                path,
                body,
                None if m.cf < 0 else m.cf,
                None if m.accept < 0 else m.accept,
                m.query or [],
            )
            # A handler's answer that cannot go on the wire is its bug: 5.00, like a crash.
            code, payload, cf = r
            if code >> 5 not in (2, 4, 5) or code == _CONTINUE:  # classes of sec. 5.9
                raise ValueError("response code %r" % code)
            if cf is not None and not 0 <= cf <= 0xFFFF:
                raise ValueError("content-format %r" % cf)
            if payload is None:
                payload = b""
            elif isinstance(payload, str):
                payload = payload.encode()
            elif not isinstance(payload, (bytes, bytearray)):
                raise TypeError("payload %r" % type(payload))
            return code, payload, cf
        except CoapError as e:
            msg = e.message
            return e.code, msg.encode() if isinstance(msg, str) else msg, None
        except Exception as e:  # a broken handler answers 5.00, it does not stop us
            log.error("coap", "%s %s: %r", m.code, m.path, e)
            return INTERNAL_SERVER_ERROR, b"", None

    def _block1(self, m, addr, now):
        # RFC 7959 sec. 2.3, 2.5: append one block of an upload in order. -> the whole
        # body after the last block, None after an intermediate one (2.31 Continue).
        v = m.block1
        num, more, szx = v >> 4, v & 8, v & 7
        off = num << (szx + 4)
        data = m.payload
        if m.size1 > self.max_body or off + len(data) > self.max_body:
            self._b1 = None  # sec. 2.9.3: 4.13 with the size we could take in Size1
            self._r_size1 = self.max_body
            raise CoapError(REQUEST_ENTITY_TOO_LARGE)
        if more and len(data) != 16 << szx:  # only the last block may be short
            raise CoapError(BAD_REQUEST, "block size")
        b = self._b1
        if num == 0:
            if not more:
                self._r_b1 = v
                return data  # the whole body in one block
            b = self._b1 = [addr, m.code, m.path, bytearray(), now]
        elif b is None or b[0] != addr or b[1] != m.code or b[2] != m.path or len(b[3]) != off:
            raise CoapError(_INCOMPLETE)  # sec. 2.9.2: out of order, or lost
        b[3].extend(data)
        b[4] = now
        if more:
            # Echo the block; a smaller SZX of ours asks the client to go on in our size.
            self._r_b1 = (num << 4) | 8 | min(szx, self.szx)
            return None
        self._b1 = None
        self._r_b1 = v
        return b[3]

    def _build(self, m, code, payload, cf):
        # The response to `m` in _tx: piggybacked on the ACK of a CON (sec. 5.2.1), a NON
        # with its own message ID for a NON (sec. 5.2.3); the token echoed (sec. 5.3.2).
        # A payload larger than one block is sliced per Block2 (RFC 7959 sec. 2.4).
        buf = self._tx
        n = len(payload)
        szx = self.szx
        b2 = m.block2
        off = 0
        if b2 >= 0:
            szx = min(szx, b2 & 7)  # the client's size or a smaller one (sec. 2.4)
            off = (b2 >> 4) << ((b2 & 7) + 4)
        size = 16 << szx
        num = off >> (szx + 4)
        off = num << (szx + 4)
        if off and off >= n:  # a block past the end of the representation
            code, payload, cf, n, b2 = BAD_OPTION, b"block", None, 5, -1
        if m.type == _CON:
            typ, mid = _ACK, m.mid
        else:
            typ = _NON
            mid = self._mid = (self._mid + 1) & 0xFFFF
        block2 = size2 = -1
        if b2 >= 0 or n > size:
            block2 = (num << 4) | (8 if off + size < n else 0) | szx
            payload = memoryview(payload)[off : off + size]
            if off == 0:
                size2 = n  # the whole size, on the first block (RFC 7959 sec. 4)
        n = M.build(
            buf, typ, code, mid, m.token, cf, block2, self._r_b1, size2, self._r_size1, payload
        )
        return bytes(memoryview(buf)[:n])

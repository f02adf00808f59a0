# lamp.net.coap: the server's processing of raw datagrams (CoapServer.handle), no socket.
# Requests are built by hand here (req()), responses checked byte by byte or through
# the codec that test_coap_msg.py proves.
import gc

from lamp import clock
from lamp.net import coap
from lamp.net import coap_msg as M

A = b"endpoint-a"  # handle() compares addresses for equality only
B = b"endpoint-b"
BIG = bytes(i % 251 for i in range(3000))
INCOMPLETE = 0x88  # 4.08 Request Entity Incomplete (RFC 7959 sec. 2.9.2)


def req(mid, path="state", code=1, typ=0, token=b"\x42", opts=(), payload=b""):
    # opts: ((number, value bytes), ...); Uri-Path from `path`. Plain sec. 3.1 encoding.
    out = bytearray([0x40 | (typ << 4) | len(token), code, mid >> 8, mid & 255]) + token
    items = [(11, s.encode()) for s in path.split("/") if s] + list(opts)
    # Ascending numbers, repeats in their given order (MicroPython's sort is not stable).
    order = sorted(range(len(items)), key=lambda k: (items[k][0], k))
    prev = 0
    for num, val in (items[k] for k in order):
        d, n = num - prev, len(val)
        prev = num
        ext = bytearray()
        nib = []
        for v in (d, n):
            if v < 13:
                nib.append(v)
            elif v < 269:
                nib.append(13)
                ext.append(v - 13)
            else:
                nib.append(14)
                ext.extend(bytes([(v - 269) >> 8, (v - 269) & 255]))
        out.append((nib[0] << 4) | nib[1])
        out.extend(ext)
        out.extend(val)
    if payload:
        out.append(0xFF)
        out.extend(payload)
    return bytes(out)


def u(v):
    # A uint option value in the fewest bytes.
    n = 0
    while v >> (8 * n):
        n += 1
    return bytes((v >> (8 * k)) & 255 for k in range(n - 1, -1, -1))


class App:
    # A handler recording its calls; resources as the node declares them.
    def __init__(self):
        self.calls = []

    def __call__(self, method, path, payload, cf, accept, query):
        self.calls.append((method, path, bytes(payload), cf, accept, query))
        if path == "/state":
            return coap.CONTENT, b'{"level":40}', 50
        if path == "/big":
            return coap.CONTENT, BIG, 0
        if path == "/upload":
            return coap.CHANGED, b"%d" % len(payload), None
        if path == "/denied":
            raise coap.CoapError(coap.UNAUTHORIZED, "bad mac")
        if path == "/crash":
            raise KeyError("boom")
        if path == "/weird":
            return 0x25, b"", None  # not a response code
        if path == "/weird-cf":
            return coap.CONTENT, b"", "json"
        if path == "/weird-payload":
            return coap.CONTENT, 42, None
        if path == "/text":
            return coap.CONTENT, "text", 0
        return coap.NOT_FOUND, b"", None


RESOURCES = (("/state", 'rt="lanterna.state";ct=50'), ("/dim", 'rt="lanterna.dim"'))


def server(**kw):
    app = App()
    return coap.CoapServer(app, RESOURCES, **kw), app


def test_con_get_gets_a_piggybacked_ack():
    s, app = server()
    r = s.handle(req(0x1234, token=b"\xaa\xbb"), A)
    # ACK, tkl 2, 2.05, same mid and token, Content-Format 50, payload
    assert r == b"\x62\x45\x12\x34\xaa\xbb\xc1\x32\xff" + b'{"level":40}', r
    assert app.calls == [(1, "/state", b"", None, None, [])]
    assert s.stats["received"] == 1 and s.stats["bad"] == 0


def test_non_request_gets_a_non_response_with_a_fresh_message_id():
    s, _ = server()
    r1 = M.parse(s.handle(req(7, typ=1, token=b"\x01"), A))
    r2 = M.parse(s.handle(req(8, typ=1, token=b"\x02"), A))
    assert (r1.type, r1.code, r1.token) == (1, coap.CONTENT, b"\x01")
    assert r2.mid == (r1.mid + 1) & 0xFFFF and r2.token == b"\x02"


def test_handler_gets_method_path_payload_and_options():
    s, app = server()
    opts = ((12, b"\x32"), (17, b"\x32"), (15, b"a=1"), (15, b"b"))
    s.handle(req(1, "a/b", code=3, opts=opts, payload=b"xyz"), A)
    assert app.calls == [(3, "/a/b", b"xyz", 50, 50, ["a=1", "b"])]
    s.handle(req(2, "", code=4), A)
    assert app.calls[-1][:2] == (4, "/")


def test_duplicate_con_is_answered_from_the_cache_not_the_handler():
    clock.setup(manual=True)
    s, app = server()
    d = req(0x55, "upload", code=2, payload=b"abc")
    first = s.handle(d, A)
    assert s.handle(d, A) == first and len(app.calls) == 1
    assert s.stats["duplicates"] == 1
    # The same message ID from another endpoint is another exchange (sec. 4.5).
    assert s.handle(d, B) == first and len(app.calls) == 2
    # Past EXCHANGE_LIFETIME (247 s) the ID may be reused: a new request.
    clock.get().advance_ms(248000)
    s.handle(d, A)
    assert len(app.calls) == 3


def test_duplicate_non_is_ignored():
    s, app = server()
    d = req(9, typ=1)
    assert s.handle(d, A) is not None
    assert s.handle(d, A) is None and len(app.calls) == 1


def test_exchange_cache_is_bounded_by_count_and_bytes():
    s, app = server()
    for mid in range(20):
        s.handle(req(mid), A)
    assert len(s._cache) == 8
    s.handle(req(0), A)  # fell out of the cache: processed again (GET is idempotent)
    assert len(app.calls) == 21
    for mid in range(100, 104):
        s.handle(req(mid, "big"), A)  # ~1 KB each
    assert s._cached <= 2048 and len(s._cache) < 8
    gc.collect()


def test_ping_gets_reset_and_ack_rst_are_ignored():
    s, app = server()
    assert s.handle(b"\x40\x00\x12\x34", A) == b"\x70\x00\x12\x34"
    assert s.handle(b"\x50\x00\x12\x35", A) is None  # empty NON
    assert s.handle(b"\x60\x00\x12\x36", A) is None  # ACK
    assert s.handle(b"\x70\x00\x12\x37", A) is None  # RST
    assert s.handle(b"\x60\x45\x12\x38\xff!", A) is None  # a response in an ACK
    assert app.calls == [] and s.stats["bad"] == 0


def test_unknown_critical_option_gets_bad_option_and_elective_is_ignored():
    s, app = server()
    r = M.parse(s.handle(req(1, opts=((2049, b"x"),)), A))
    assert r.code == coap.BAD_OPTION and r.payload == b"option 2049"
    assert app.calls == []
    r = M.parse(s.handle(req(2, opts=((2048, b"x"), (6, b""))), A))  # Observe: elective
    assert r.code == coap.CONTENT
    # In a NON the critical option rejects the message silently (sec. 5.4.1).
    assert s.handle(req(3, typ=1, opts=((9, b"x"),)), A) is None
    r = M.parse(s.handle(req(4, opts=((35, b"coap://x/y"),)), A))
    assert r.code == 0xA5  # 5.05 Proxying Not Supported


def test_unknown_method_gets_method_not_allowed():
    s, app = server()
    assert M.parse(s.handle(req(1, code=5), A)).code == coap.METHOD_NOT_ALLOWED  # FETCH
    assert M.parse(s.handle(req(2, code=31), A)).code == coap.METHOD_NOT_ALLOWED
    assert app.calls == []


def test_handler_errors_become_response_codes():
    s, app = server()
    r = M.parse(s.handle(req(1, "denied"), A))
    assert r.code == coap.UNAUTHORIZED and r.payload == b"bad mac" and r.cf == -1
    r = M.parse(s.handle(req(2, "crash"), A))
    assert r.code == coap.INTERNAL_SERVER_ERROR and r.payload == b""
    for mid, path in ((3, "weird"), (5, "weird-cf"), (6, "weird-payload")):
        r = M.parse(s.handle(req(mid, path), A))
        assert r.code == coap.INTERNAL_SERVER_ERROR, path
    assert M.parse(s.handle(req(7, "text"), A)).payload == b"text"
    assert M.parse(s.handle(req(4, "nothing"), A)).code == coap.NOT_FOUND


def test_well_known_core_lists_the_resources():
    s, app = server()
    r = M.parse(s.handle(req(1, ".well-known/core"), A))
    assert r.code == coap.CONTENT and r.cf == 40
    assert r.payload == b'</state>;rt="lanterna.state";ct=50,</dim>;rt="lanterna.dim"'
    assert M.parse(s.handle(req(2, ".well-known/core", code=2), A)).code == 0x85
    assert app.calls == []


def get_blocks(s, path, szx=None):
    # Block2 sequence as a client runs it -> (body, [responses]).
    body = bytearray()
    seen = []
    num = 0
    while True:
        opts = () if szx is None and num == 0 else ((23, u((num << 4) | szx)),)
        r = M.parse(s.handle(req(0x100 + num, path, opts=opts), A))
        seen.append(r)
        assert r.code == coap.CONTENT and r.block2 >= 0
        body.extend(r.payload)
        szx = r.block2 & 7  # the server's size from now on (RFC 7959 sec. 2.4)
        if not r.block2 & 8:
            return bytes(body), seen
        num = (r.block2 >> 4) + 1


def test_block2_slices_a_large_response():
    s, app = server()
    body, rs = get_blocks(s, "big")
    assert body == BIG and len(rs) == 3
    assert [r.block2 for r in rs] == [0x0E, 0x1E, 0x26]  # 1024-byte blocks, M on two
    # Size2 on the first block only (RFC 7959 sec. 4): parse the raw options for it.
    first = s.handle(req(0x200, "big"), A)
    assert b"\x52\x0b\xb8" in first[:16]  # Size2 (delta 5, 2 bytes) = 3000
    assert len(first) <= 1024 + 64


def test_block2_honours_a_smaller_size_from_the_client():
    s, app = server(szx=5)
    body, rs = get_blocks(s, "big", szx=2)  # 64-byte blocks
    assert body == BIG and len(rs) == 47
    body, rs = get_blocks(s, "big", szx=6)  # asks 1024, gets our 512
    assert body == BIG and all(r.block2 & 7 == 5 for r in rs)


def test_block2_past_the_end_is_bad_option():
    s, app = server()
    r = M.parse(s.handle(req(1, "big", opts=((23, u((9 << 4) | 6)),)), A))
    assert r.code == coap.BAD_OPTION
    r = M.parse(s.handle(req(2, "big", opts=((23, b"\x07"),)), A))  # SZX 7 is reserved
    assert r.code == coap.BAD_REQUEST


def put_blocks(s, body, szx, path="upload", mid=0x300, addr=A):
    # Block1 sequence as a client runs it, following the server's SZX -> final response.
    off = 0
    while True:
        size = 16 << szx
        chunk = body[off : off + size]
        more = 8 if off + size < len(body) else 0
        opt = ((27, u(((off // size) << 4) | more | szx)),)
        r = M.parse(s.handle(req(mid, path, code=3, opts=opt, payload=chunk), addr))
        mid += 1
        if r.code != 0x5F:  # 2.31 Continue
            return r
        assert r.block1 >> 4 == off // size and r.block1 & 8
        off += size
        szx = r.block1 & 7


def test_block1_reassembles_the_body_for_one_handler_call():
    s, app = server()
    r = put_blocks(s, BIG, 6)
    assert r.code == coap.CHANGED and r.payload == b"3000"
    assert r.block1 == (2 << 4) | 6  # last block echoed, M clear
    assert len(app.calls) == 1 and app.calls[0][2] == BIG
    assert s._b1 is None  # the buffer is given back


def test_block1_follows_a_smaller_server_block_size():
    s, app = server(szx=4)  # 256-byte blocks: the client goes on in our size
    r = put_blocks(s, BIG, 6)
    assert r.code == coap.CHANGED and app.calls[0][2] == BIG


def test_block1_out_of_order_is_request_entity_incomplete():
    s, app = server()
    blk = bytes(1024)
    r = M.parse(s.handle(req(1, "upload", code=3, opts=((27, u(0x1E)),), payload=blk), A))
    assert r.code == INCOMPLETE  # block 1 without block 0
    assert (
        M.parse(s.handle(req(2, "upload", 3, opts=((27, u(0x0E)),), payload=blk), A)).code == 0x5F
    )
    r = M.parse(s.handle(req(3, "upload", code=3, opts=((27, u(0x2E)),), payload=blk), A))
    assert r.code == INCOMPLETE  # block 2 after block 0
    r = M.parse(s.handle(req(4, "upload", code=3, opts=((27, u(0x1E)),), payload=blk), B))
    assert r.code == INCOMPLETE  # block 1 from someone else
    r = M.parse(s.handle(req(5, "upload", code=3, opts=((27, u(0x1E)),), payload=b"x"), A))
    assert r.code == coap.BAD_REQUEST  # a short block with M set
    assert app.calls == []


def test_block1_over_max_body_is_request_entity_too_large():
    s, app = server(max_body=2048)
    r = put_blocks(s, BIG, 6)
    assert r.code == coap.REQUEST_ENTITY_TOO_LARGE and r.size1 == 2048
    assert s._b1 is None and app.calls == []
    # Size1 announcing too much is refused at the first block.
    opts = ((27, u(0x0E)), (60, u(5000)))
    r = M.parse(s.handle(req(9, "upload", code=3, opts=opts, payload=bytes(1024)), A))
    assert r.code == coap.REQUEST_ENTITY_TOO_LARGE and r.size1 == 2048


def test_oversized_datagram_gets_request_entity_too_large():
    s, app = server()
    r = M.parse(s.handle(req(1, "upload", code=3, payload=bytes(1200)), A))
    assert r.code == coap.REQUEST_ENTITY_TOO_LARGE and r.block1 == 6
    assert app.calls == []


MALFORMED = (
    # (datagram, expected answer: None = ignored, or the RST)
    (b"", None),
    (b"\x40\x01", None),
    (b"\x80\x01\x00\x01", None),  # version 2
    (b"\x49\x01\x00\x01" + bytes(9), b"\x70\x00\x00\x01"),  # token length 9
    (b"\x4f\x01\x00\x02" + bytes(20), b"\x70\x00\x00\x02"),  # token length 15
    (b"\x59\x01\x00\x03" + bytes(9), None),  # the same in a NON: ignored
    (b"\x40\x01\x00\x04\xff", b"\x70\x00\x00\x04"),  # marker, no payload
    (b"\x40\x01\x00\x05\xf1\x00", b"\x70\x00\x00\x05"),  # delta 15
    (b"\x40\x01\x00\x06\xbf", b"\x70\x00\x00\x06"),  # length 15
    (b"\x40\x01\x00\x07\xd0", b"\x70\x00\x00\x07"),  # extension missing
    (b"\x40\x01\x00\x08\xe0\x01", b"\x70\x00\x00\x08"),
    (b"\x40\x01\x00\x09\xb9abc", b"\x70\x00\x00\x09"),  # value cut
    (b"\x40\x01\x00\x0a" + b"\xe0\xff\xff" * 2, b"\x70\x00\x00\x0a"),  # number > 65535
    (b"\x41\x00\x00\x0b\x01", b"\x70\x00\x00\x0b"),  # empty message with a token
    (b"\x40\x00\x00\x0c\xff\x01", b"\x70\x00\x00\x0c"),  # empty message with bytes
    (b"\x40\x45\x00\x0d", b"\x70\x00\x00\x0d"),  # a response in a CON: no context
    (b"\x40\x25\x00\x0e", b"\x70\x00\x00\x0e"),  # code class 1 (reserved)
    (b"\x40\xe1\x00\x0f", b"\x70\x00\x00\x0f"),  # code class 7 (reserved)
    (b"\x50\x45\x00\x10", None),
)


def test_malformed_datagrams_are_ignored_or_reset_never_raised():
    s, app = server()
    for d, want in MALFORMED:
        got = s.handle(d, A)
        assert got == want, (d, got, want)
    assert app.calls == [] and s.stats["bad"] == len(MALFORMED)
    # Every prefix and every single-byte corruption of a valid request: no exception.
    good = req(0x77, "upload", code=3, opts=((27, u(0x16)), (60, u(64))), payload=b"z" * 40)
    # A new endpoint each time, or the cache would answer most of them as duplicates.
    for n in range(len(good)):
        s.handle(good[:n], b"%d" % n)
    for i in range(len(good)):
        for v in (0x00, 0x0D, 0x0E, 0x0F, 0xD0, 0xE0, 0xFF, good[i] ^ 0x80):
            d = bytearray(good)
            d[i] = v
            s.handle(bytes(d), b"%d/%d" % (i, v))
    assert s.stats["received"] > 400


def test_server_heap_cost():
    gc.collect()
    a0 = gc.mem_alloc()
    s, app = server()
    gc.collect()
    a1 = gc.mem_alloc()
    for mid in range(12):  # fill the exchange cache, then a block-wise GET and PUT
        s.handle(req(mid), A)
    get_blocks(s, "big")
    put_blocks(s, BIG[:2048], 6)
    app.calls = []
    gc.collect()
    a2 = gc.mem_alloc()
    # 64-bit unix port: objects take about twice the ESP32's words; the 1 KB buffers not.
    print("COAP-HEAP server=%d in_use=%d" % (a1 - a0, a2 - a0))
    assert a1 - a0 < 2048 and a2 - a0 < 8192


async def test_run_answers_over_udp_and_closes_its_socket_when_cancelled():
    import asyncio
    import os
    import socket

    s, app = server()
    s.host = "127.0.0.1"
    while True:  # a port no other process holds (MicroPython has no getsockname)
        s.port = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(socket.getaddrinfo("127.0.0.1", s.port)[0][-1])
            break
        except OSError:
            pass
        finally:
            probe.close()
    dest = socket.getaddrinfo("127.0.0.1", s.port, 0, socket.SOCK_DGRAM)[0][-1]
    for _ in range(2):  # the app's guard restarts run() after a failure: it must rebind
        task = asyncio.create_task(s.run())
        while s.sock is None and not task.done():
            await asyncio.sleep_ms(0)  # yield until it bound, not a timed wait
        if task.done():
            await task  # the bind failed: its error is the test's
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.setblocking(False)
        c.sendto(req(0x4242), dest)
        r = await asyncio.wait_for_ms(asyncio.StreamReader(c).read(1200), 10000)
        c.close()
        assert M.parse(r).code == coap.CONTENT and s.stats["sent"] >= 1
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert s.sock is None
    assert len(app.calls) == 2

# lamp.net.coap_msg: the CoAP codec (RFC 7252 sec. 3) on hand-written datagrams.
from lamp.net import coap_msg as M

OK, BAD_OPTION, PROXYING = 0, 0x82, 0xA5  # Msg.err: fine, 4.02, 5.05
NON, ACK, GET = 1, 2, 1


def test_header_token_options_and_payload_are_parsed():
    d = (
        b"\x52\x01\x12\x34\xaa\xbb"  # ver 1, NON, tkl 2, GET, mid 0x1234, token aabb
        b"\xb5state"  # Uri-Path (11) "state"
        b"\x11\x32"  # Content-Format (12) = 50
        b"\x33a=1"  # Uri-Query (15) "a=1"
        b"\x03b=2"  # Uri-Query again (delta 0)
        b"\x21\x28"  # Accept (17) = 40
        b"\xff{}"  # payload
    )
    m = M.parse(d)
    assert (m.type, m.code, m.mid, m.token, m.err) == (NON, GET, 0x1234, b"\xaa\xbb", OK)
    assert m.path == "/state" and m.cf == 50 and m.accept == 40
    assert m.query == ["a=1", "b=2"] and m.payload == b"{}"
    assert m.block1 == m.block2 == m.size1 == -1
    m = M.parse(b"\x60\x45\x00\x07")  # an empty ACK... with a response code: parsed
    assert (m.type, m.code, m.mid, m.token, m.path, m.query) == (ACK, 0x45, 7, b"", "", None)


def test_extended_delta_and_length_encodings():
    seg = b"abcdefghijklmnopqrstu"  # 21 bytes: length nibble 13, extended byte 8
    d = (
        b"\x40\x03\x00\x01"  # CON PUT mid 1, no token
        + b"\xbd\x08"  # Uri-Path (delta 11), length 13 + 8
        + seg
        + b"\xd2\x04\x00\x10"  # delta 13 + 4 = 17 -> 28 (Size2): elective, ignored
        + b"\xd2\x06\x00\x20"  # delta 13 + 6 = 19 -> 47: critical, unknown
    )
    m = M.parse(d)
    assert m.path == "/" + seg.decode()
    assert m.err == BAD_OPTION and m.opt == 47
    # An elective option 2048 (delta 14: two extended bytes, 2048 - 269 = 0x06F3).
    m = M.parse(b"\x40\x03\x00\x02\xe1\x06\xf3e\xffbody")
    assert m.err == OK and m.payload == b"body"
    m = M.parse(b"\x40\x03\x00\x02\xd1\x0e\x16\xffbody")  # Block1 (27) = 1/0/64
    assert m.block1 == 0x16 and m.payload == b"body"
    # Block1 in three bytes, then Size1 (60, delta 33) in four.
    m = M.parse(b"\x40\x03\x00\x02\xd3\x0e\x01\x00\x18\xd4\x14\x00\x00\x10\x00\xffx")
    assert m.block1 == 0x10018 and m.size1 == 4096 and m.payload == b"x"


def test_uint_options_and_repeats():
    # Accept (17) repeated: a non-repeatable critical option -> unrecognised (sec. 5.4.5).
    m = M.parse(b"\x40\x01\x00\x03\xd1\x04\x32\x01\x28")
    assert m.err == BAD_OPTION and m.opt == 17
    m = M.parse(b"\x40\x01\x00\x03\xd1\x04\x32")
    assert m.err == OK and m.accept == 50
    # Content-Format longer than 2 bytes: elective, so ignored (sec. 5.4.3).
    m = M.parse(b"\x40\x02\x00\x03\xc3\x01\x02\x03")
    assert m.err == OK and m.cf == -1
    # Block2 of 4 bytes: critical, out of range -> 4.02.
    m = M.parse(b"\x40\x01\x00\x03\xd4\x0a\x00\x00\x00\x16")
    assert m.err == BAD_OPTION and m.opt == 23
    # Uri-Host and Uri-Port are critical but known: accepted.
    m = M.parse(b"\x40\x01\x00\x03\x39localhost\x42\x16\x33")
    assert m.err == OK
    m = M.parse(b"\x40\x01\x00\x03\xdd\x16\x00" + b"coap://x" + b"\x00" * 5)  # Proxy-Uri (35)
    assert m.err == PROXYING


def test_malformed_datagrams_are_reported_not_raised():
    ignored = (b"", b"\x40\x01\x00", b"\x80\x01\x00\x01", b"\x00\x01\x00\x01", b"\xc0\x01\x00\x01")
    for d in ignored:  # not a CoAP 1 header: nothing to answer to (sec. 3)
        assert M.parse(d) is None, d
    format_errors = (
        b"\x49\x01\x00\x01" + bytes(9),  # token length 9 (reserved)
        b"\x4f\x01\x00\x01" + bytes(15),  # token length 15
        b"\x44\x01\x00\x01\xaa",  # token cut short
        b"\x40\x01\x00\x01\xff",  # payload marker and no payload
        b"\x40\x01\x00\x01\xf1\x00",  # delta nibble 15 without 0xFF
        b"\x40\x01\x00\x01\x1f",  # length nibble 15
        b"\x40\x01\x00\x01\xd0",  # extended delta byte missing
        b"\x40\x01\x00\x01\xe0\x01",  # two-byte extended delta cut short
        b"\x40\x01\x00\x01\x1d",  # extended length byte missing
        b"\x40\x01\x00\x01\xb5abc",  # option value runs past the end
        b"\x40\x01\x00\x01\xb2\xff\xfe",  # Uri-Path not UTF-8 -> critical, unrecognised
    )
    for d in format_errors:
        m = M.parse(d)
        assert m is not None and m.mid == 1 and m.err != OK, d
    # Option numbers past 65535 from stacked extended deltas (sec. 3.1: 16 bits).
    m = M.parse(b"\x40\x01\x00\x01" + b"\xe0\xff\xff" * 2)
    assert m.err == M.FORMAT


def test_build_writes_header_and_minimal_uint_options_in_order():
    buf = bytearray(64)
    n = M.build(buf, ACK, 0x45, 0xBEEF, b"\x01\x02", 0, 0x1E, -1, 3000, 0x10000, b"hi")
    assert bytes(buf[:6]) == b"\x62\x45\xbe\xef\x01\x02"  # ACK, tkl 2, 2.05
    # Content-Format 0 has no value bytes (sec. 3.2); Size1 at delta 32 takes one
    # extended delta byte.
    assert bytes(buf[6:n]) == b"\xc0\xb1\x1e\x52\x0b\xb8\xd3\x13\x01\x00\x00\xffhi"
    m = M.parse(bytes(buf[:n]))
    assert m.err == OK and m.cf == 0 and m.size1 == 0x10000 and m.payload == b"hi"
    # No options, no payload: no marker either.
    n = M.build(buf, 3, 0, 7, b"", None, -1, -1, -1, -1, b"")
    assert bytes(buf[:n]) == b"\x70\x00\x00\x07"
    n = M.build(buf, NON, 0x84, 1, b"", None, -1, 0x16, -1, -1, b"")
    assert bytes(buf[:n]) == b"\x50\x84\x00\x01\xd1\x0e\x16"  # Block1 at delta 27

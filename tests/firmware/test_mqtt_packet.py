# lamp.net.mqtt_packet, the MQTT 3.1.1 codec (OASIS mqtt-v3.1.1-os), byte by byte against
# the spec's layouts. Runs in MicroPython under the node's heap budget.
import gc

from fw import raises
from lamp.net import mqtt_packet as pk

CONNACK_OK = b"\x20\x02\x00\x00"


def _len(n):
    buf = bytearray(4)
    return bytes(buf[: pk.put_length(buf, 0, n)])


def test_remaining_length_edges_match_the_spec_table():
    # sec. 2.2.3, table 2.4: the smallest and largest value of 1, 2, 3 and 4 bytes
    assert _len(0) == b"\x00"
    assert _len(127) == b"\x7f"
    assert _len(128) == b"\x80\x01"
    assert _len(16383) == b"\xff\x7f"
    assert _len(16384) == b"\x80\x80\x01"
    assert _len(2097151) == b"\xff\xff\x7f"
    assert _len(2097152) == b"\x80\x80\x80\x01"
    assert _len(268435455) == b"\xff\xff\xff\x7f"
    raises(ValueError, _len, 268435456)
    raises(ValueError, _len, -1)


def test_connect_with_will_and_credentials():
    got = pk.connect("n1", 60, "user", "pw", ("t/s", b"offline", 1, True))
    body = (
        b"\x00\x04MQTT\x04"  # protocol name and level 4 (sec. 3.1.2.1-2)
        + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02])  # user pw will-retain/QoS1/will clean
        + b"\x00\x3c"  # keepalive 60 s
        + b"\x00\x02n1"  # client id, will topic, will message, user, password (sec. 3.1.3)
        + b"\x00\x03t/s"
        + b"\x00\x07offline"
        + b"\x00\x04user"
        + b"\x00\x02pw"
    )
    assert bytes(got) == b"\x10" + bytes([len(body)]) + body


def test_connect_without_will_or_credentials_is_just_clean_session():
    got = pk.connect("n1", 0, None, None, None)
    assert bytes(got) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x00\x00\x02n1"


def test_password_without_user_name_is_not_sent():
    # sec. 3.1.2.9: the password flag needs the user name flag
    got = pk.connect("n1", 60, None, "pw", None)
    assert got[9] == 0x02 and b"pw" not in bytes(got)[12:]


def test_connect_rejects_a_bad_keepalive_or_will_qos():
    raises(ValueError, pk.connect, "n1", 65536)
    raises(ValueError, pk.connect, "n1", 60, None, None, ("t", b"x", 3, False))


def test_publish_header_qos0_qos1_dup_retain():
    buf = bytearray(10)
    # QoS 0: byte 1 0x30, remaining = 2 + topic + payload, no packet id (sec. 3.3.2.2)
    n = pk.publish_head(buf, 0, 3, 5)
    assert bytes(buf[:n]) == b"\x30\x0a\x00\x03"
    # QoS 1, DUP and RETAIN: 0x30 | 0x08 | 0x02 | 0x01, two more bytes for the packet id
    n = pk.publish_head(buf, 0x0B, 3, 5)
    assert bytes(buf[:n]) == b"\x3b\x0c\x00\x03"
    # a payload that needs a 2-byte remaining length
    n = pk.publish_head(buf, 0x02, 10, 200)
    assert bytes(buf[:n]) == b"\x32\xd6\x01\x00\x0a"


def test_subscribe_and_puback_bytes():
    # sec. 3.8: flags 0010, packet id, topic filter, requested QoS
    assert bytes(pk.subscribe(0x1234, "a/b", 1)) == b"\x82\x08\x12\x34\x00\x03a/b\x01"
    buf = bytearray(4)
    assert bytes(pk.puback(buf, 0xBEEF)) == b"\x40\x02\xbe\xef"
    assert pk.PINGREQ == b"\xc0\x00" and pk.DISCONNECT == b"\xe0\x00"


STREAM = (
    CONNACK_OK
    + b"\x90\x03\x00\x01\x01"  # SUBACK pid 1 granted QoS 1
    + b"\x32\x0a\x00\x03a/b\x00\x07hi!"  # PUBLISH QoS 1 pid 7 "hi!"
    + b"\x40\x02\x00\x05"  # PUBACK pid 5
    + b"\xd0\x00"  # PINGRESP
    + b"\x31\x05\x00\x03c/d"  # PUBLISH QoS 0 retained, empty payload
)
EXPECTED = [
    (0x20, b"\x00\x00"),
    (0x90, b"\x00\x01\x01"),
    (0x32, b"\x00\x03a/b\x00\x07hi!"),
    (0x40, b"\x00\x05"),
    (0xD0, b""),
    (0x31, b"\x00\x03c/d"),
]


def _parse(chunks, cap=64):
    p = pk.Parser(cap)
    got = []
    for chunk in chunks:
        i = 0
        while i < len(chunk):
            i = p.feed(chunk, i, len(chunk))
            if p.ready:
                got.append((p.kind, bytes(p.body[: p.length])))
    return got


def test_parser_reads_packets_whole_or_split_at_every_byte():
    assert _parse([STREAM]) == EXPECTED
    assert _parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED
    for cut in range(1, len(STREAM)):
        assert _parse([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_parser_decodes_every_length_edge_of_a_publish():
    for n in (0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455):
        p = pk.Parser(16)
        head = b"\x30" + _len(n)
        assert p.feed(head, 0, len(head)) == len(head)
        assert p.length == n and p.ready == (n == 0)


def test_five_byte_remaining_length_is_malformed():
    p = pk.Parser(64)
    bad = b"\x30\xff\xff\xff\xff\x01"
    e = raises(ValueError, p.feed, bad, 0, len(bad))
    assert "4 bytes" in str(e)


def test_packets_a_client_must_not_receive_are_rejected():
    bad = [
        b"\x00\x00",  # reserved 0
        b"\xf0\x00",  # reserved 15
        b"\x10\x00",  # CONNECT
        b"\x82\x00",  # SUBSCRIBE
        b"\xc0\x00",  # PINGREQ
        b"\x50\x02\x00\x01",  # PUBREC: the node never uses QoS 2
        b"\x34\x05\x00\x01a\x00\x01",  # PUBLISH QoS 2
        b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH QoS 3 (sec. 3.3.1.2)
        b"\x21\x02\x00\x00",  # CONNACK with reserved flags (sec. 2.2.2)
        b"\x20\x03\x00\x00\x00",  # CONNACK of 3 bytes
        b"\x40\x7f",  # PUBACK claiming 127 bytes: refused before any is read
        b"\xd0\x01\x00",  # PINGRESP with a body
    ]
    for data in bad:
        p = pk.Parser(64)
        raises(ValueError, p.feed, data, 0, len(data))


def test_oversized_publish_is_discarded_in_bounded_memory():
    # A 20 000-byte PUBLISH against a 100-byte cap: read through in 256-byte chunks,
    # the first 128 bytes (topic, packet id) kept, and the next packet still parsed.
    p = pk.Parser(100)
    head = b"\x32" + _len(2 + 3 + 2 + 20000) + b"\x00\x03a/b\x00\x09"
    chunk = bytes(256)
    gc.collect()
    before = gc.mem_alloc()
    assert p.feed(head, 0, len(head)) == len(head)
    left = 20000
    while left:
        k = min(left, 256)
        assert p.feed(chunk, 0, k) == k
        left -= k
    assert p.ready and p.length == 20007 and len(p.body) == 128
    assert bytes(p.body[:9]) == b"\x00\x03a/b\x00\x09\x00\x00"
    gc.collect()
    assert gc.mem_alloc() - before < 1024
    assert p.feed(CONNACK_OK, 0, 4) == 4 and p.ready and p.kind == 0x20


def _publish_fields(data, cap=64):
    p = pk.Parser(cap)
    p.feed(data, 0, len(data))
    assert p.ready
    return p.publish()


def test_publish_fields_of_qos0_qos1_and_a_discarded_publish():
    assert _publish_fields(b"\x30\x06\x00\x03a/bhi") == (5, 0, 5)
    assert _publish_fields(b"\x32\x08\x00\x03a/b\x12\x34hi") == (5, 0x1234, 7)
    # over the cap: the kept head still names the topic and the packet id to acknowledge
    big = b"\x32" + _len(7 + 500) + b"\x00\x03a/b\x00\x09" + bytes(500)
    assert _publish_fields(big, cap=100) == (5, 9, 7)


def test_malformed_publish_fields_are_rejected():
    bad = [
        b"\x30\x04\x00\x09ab",  # Topic Name longer than the packet
        b"\x30\x02\x00\x00",  # empty Topic Name (sec. 4.7.3)
        b"\x32\x03\x00\x01a",  # QoS 1 without a packet identifier
        b"\x32\x05\x00\x01a\x00\x00",  # packet identifier 0 (sec. 2.3.1)
        b"\x30\x01\x00",  # not even a topic length
    ]
    for data in bad:
        raises(ValueError, _publish_fields, data)

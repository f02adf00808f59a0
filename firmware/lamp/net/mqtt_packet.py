# MQTT 3.1.1 wire format (OASIS mqtt-v3.1.1-os; "sec." below is that document): the
# bytes of the packets the node sends, and an incremental parser of the ones a broker
# sends. Split from lamp.net.mqtt (the session: outbox, keepalive, reconnect) so the codec
# is tested byte by byte without a socket. Everything a broker sends is checked before
# it is believed: a malformed packet raises ValueError and the session drops the link.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


MAX_LENGTH = const(268435455)  # largest Remaining Length, 4 bytes (sec. 2.2.3)
PINGREQ = b"\xc0\x00"  # sec. 3.12
DISCONNECT = b"\xe0\x00"  # sec. 3.14
_PEEK = const(128)  # bytes kept of a PUBLISH over the limit: its topic and packet id

# Remaining Length a broker may send per packet type (sec. 2.2.1), indexed by type:
# 0xFF = a client never receives it (CONNECT, SUBSCRIBE, PINGREQ, ..., reserved 0 and 15;
# PUBREC/PUBREL/PUBCOMP too: the node never asks for QoS 2), 0xFE = PUBLISH (variable).
# CONNACK 2 (sec. 3.2), PUBACK 2 (sec. 3.4), SUBACK 3 (sec. 3.9: we subscribe one topic
# per packet), PINGRESP 0 (sec. 3.13).
_SIZE = b"\xff\xff\x02\xfe\x02\xff\xff\xff\xff\x03\xff\xff\xff\x00\xff\xff"

# CONNACK return codes 1..5 (sec. 3.2.2.3, table 3.1).
REFUSED = (
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


def put_length(buf, off, n):
    # Remaining Length at buf[off:] as 1..4 bytes, 7 bits each, low first (sec. 2.2.3);
    # -> the offset after it.
    if not 0 <= n <= MAX_LENGTH:
        raise ValueError("remaining length %d" % n)
    while True:
        b = n & 0x7F
        n >>= 7
        buf[off] = b | 0x80 if n else b
        off += 1
        if not n:
            return off


def _length_size(n):
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4


def _put_field(buf, off, data):
    # UTF-8 string or binary data with its 2-byte length (sec. 1.5.3, 3.1.3.3).
    n = len(data)
    if n > 65535:
        raise ValueError("field of %d bytes" % n)
    buf[off] = n >> 8
    buf[off + 1] = n & 0xFF
    buf[off + 2 : off + 2 + n] = data
    return off + 2 + n


def _enc(s):
    return s.encode() if isinstance(s, str) else s


def connect(client_id, keepalive, user=None, password=None, will=None):
    # CONNECT (sec. 3.1), always Clean Session (sec. 3.1.2.4): the broker keeps no state
    # for the node between connections; the outbox resends what was not acknowledged.
    # will = (topic, payload, qos, retain) (sec. 3.1.2.5-3.1.2.7).
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive %d" % keepalive)
    fields = [_enc(client_id)]
    flags = 0x02
    if will is not None:
        topic, msg, qos, retain = will
        if not 0 <= qos <= 2:
            raise ValueError("will qos %d" % qos)
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
        fields.append(_enc(topic))
        fields.append(_enc(msg))
    if user is not None:
        flags |= 0x80
        fields.append(_enc(user))
        if password is not None:  # no password without a user name (sec. 3.1.2.9)
            flags |= 0x40
            fields.append(_enc(password))
    n = 10  # variable header: protocol name, level, flags, keepalive (sec. 3.1.2)
    for f in fields:
        n += 2 + len(f)
    buf = bytearray(1 + _length_size(n) + n)
    buf[0] = 0x10
    off = put_length(buf, 1, n)
    # Protocol Name "MQTT" (sec. 3.1.2.1), Protocol Level 4 = 3.1.1 (sec. 3.1.2.2).
    buf[off : off + 7] = b"\x00\x04MQTT\x04"
    buf[off + 7] = flags
    buf[off + 8] = keepalive >> 8
    buf[off + 9] = keepalive & 0xFF
    off += 10
    # Payload order: Client Identifier, Will Topic, Will Message, User Name, Password
    # (sec. 3.1.3).
    for f in fields:
        off = _put_field(buf, off, f)
    return buf


def publish_head(buf, flags, topic_len, payload_len):
    # Fixed header and Topic Name length of a PUBLISH (sec. 3.3.1, 3.3.2) into buf;
    # -> its size. The topic, the Packet Identifier (QoS > 0 only, sec. 3.3.2.2) and the
    # payload follow on the wire: the caller writes them, so nothing is copied.
    # flags = DUP << 3 | QoS << 1 | RETAIN (sec. 3.3.1.1-3.3.1.3).
    n = 2 + topic_len + (2 if flags & 0x06 else 0) + payload_len
    buf[0] = 0x30 | flags
    off = put_length(buf, 1, n)
    buf[off] = topic_len >> 8
    buf[off + 1] = topic_len & 0xFF
    return off + 2


def subscribe(pid, topic, qos):
    # SUBSCRIBE with one topic filter (sec. 3.8); the fixed header's flags are 0010
    # (sec. 3.8.1). SUBACK answers with one return code (sec. 3.9.3).
    t = _enc(topic)
    n = 2 + 2 + len(t) + 1
    buf = bytearray(1 + _length_size(n) + n)
    buf[0] = 0x82
    off = put_length(buf, 1, n)
    buf[off] = pid >> 8
    buf[off + 1] = pid & 0xFF
    off = _put_field(buf, off + 2, t)
    buf[off] = qos
    return buf


def puback(buf, pid):
    # PUBACK (sec. 3.4) into a 4-byte buf.
    buf[0] = 0x40
    buf[1] = 2
    buf[2] = pid >> 8
    buf[3] = pid & 0xFF
    return buf


class Parser:
    # Incremental: feed() takes whatever the socket returned (a packet may arrive split
    # at any byte, several may arrive in one read) and stops at the end of each packet.
    # Then `ready` is set: `kind` is byte 1 (type << 4 | flags), `length` the Remaining
    # Length and `body` its bytes. A PUBLISH over `cap` bytes is read and discarded but
    # for its first _PEEK bytes (len(body) < length says so): memory stays bounded by
    # cap whatever the broker sends. Other packets live in a 4-byte scratch buffer.
    def __init__(self, cap):
        self.cap = cap
        self._small = bytearray(4)
        self.reset()

    def reset(self):
        self.ready = False
        self.kind = 0
        self.length = 0
        self.body = self._small
        self._state = 0  # 0: byte 1, 1: Remaining Length, 2: body
        self._shift = 0
        self._got = 0

    def publish(self):
        # Topic Name and Packet Identifier of the PUBLISH parsed (sec. 3.3.2) -> (end of
        # the topic in body, packet id or 0 at QoS 0, offset of the payload). The id is 0
        # too if a discarded PUBLISH kept too little of itself. ValueError if malformed.
        b = self.body
        n = self.length
        end = 2 + (b[0] << 8 | b[1]) if n >= 2 else n + 1
        off = end
        pid = 0
        if self.kind & 0x06:
            if off + 2 <= len(b):
                pid = b[off] << 8 | b[off + 1]
                if not pid:  # sec. 2.3.1: non-zero
                    raise ValueError("PUBLISH with packet id 0")
            off += 2
        if off > n or end == 2:  # beyond the packet, or an empty Topic Name (sec. 4.7.3)
            raise ValueError("malformed PUBLISH")
        return end, pid, off

    def feed(self, buf, i, n):
        # Consume buf[i:n] up to the end of one packet; -> the index after what was used.
        if self.ready:
            self.reset()
        while i < n:
            if self._state == 0:
                b = buf[i]
                i += 1
                t = b >> 4
                if _SIZE[t] == 0xFF:
                    raise ValueError("unexpected packet type %d" % t)
                # Fixed header flags are reserved (0) but for PUBLISH (sec. 2.2.2), whose
                # QoS 3 is malformed (sec. 3.3.1.2) and QoS 2 never granted to us.
                if t == 3:
                    if b & 0x06 > 0x02:
                        raise ValueError("PUBLISH QoS %d" % (b >> 1 & 3))
                elif b & 0x0F:
                    raise ValueError("type %d with flags 0x%x" % (t, b & 0x0F))
                self.kind = b
                self.length = 0
                self._shift = 0
                self._state = 1
            elif self._state == 1:
                b = buf[i]
                i += 1
                self.length |= (b & 0x7F) << self._shift
                self._shift += 7
                if b & 0x80:
                    if self._shift == 28:  # a 5th byte: malformed (sec. 2.2.3)
                        raise ValueError("remaining length over 4 bytes")
                    continue
                size = _SIZE[self.kind >> 4]
                if size != 0xFE:
                    if self.length != size:
                        raise ValueError("type %d of %d bytes" % (self.kind >> 4, self.length))
                    self.body = self._small
                else:
                    keep = self.length if self.length <= self.cap else _PEEK
                    self.body = bytearray(keep)
                self._got = 0
                self._state = 2
                if self.length == 0:
                    self.ready = True
                    return i
            else:
                k = min(n - i, self.length - self._got)
                keep = min(k, len(self.body) - self._got)
                if keep > 0:
                    self.body[self._got : self._got + keep] = buf[i : i + keep]
                self._got += k
                i += k
                if self._got == self.length:
                    self.ready = True
                    return i
        return i

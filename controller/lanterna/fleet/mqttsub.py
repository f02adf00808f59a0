"""The ingest worker's MQTT 3.1.1 session: a subscriber on a socket of its own.

Why not paho: `lanterna serve` must keep up with what a broker can hand one subscriber,
and paho spends about 73 us of CPU per received message (a Python object, a callback and
three socket reads per PUBLISH; bench/bench_ingest.py, case paho:1), where the C client
`mosquitto_sub` spends 14. This session reads whatever the socket holds in one recv() (up
to 256 KiB: a few hundred PUBLISH packets), parses every complete packet out of it in
one pass, and hands them over as a batch; the caller commits the batch and acknowledges
it with one write of PUBACKs (measured: 8 us a message, sec. references below are OASIS
mqtt-v3.1.1-os).

What it does, and no more, because ingest needs no more: CONNECT with a persistent
(clean_session false) or clean session, user and password, plain TCP or TLS verified
against the broker's CA and host name; SUBSCRIBE and UNSUBSCRIBE; PUBLISH received at QoS
0 and 1 and PUBACKed when the caller says (after its commit); PINGREQ when nothing was
sent for half the keepalive, the link given up when nothing arrived for 1.5 of it (sec.
3.1.2.10). It never publishes. Everything the broker sends is checked before it is
believed: a malformed packet raises ProtocolError and the caller drops the link (nothing
unacknowledged is lost: the persistent session sends it again). A PUBLISH larger than
`cap` is read past, not kept: its packet id is still returned (payload None) so the
caller can acknowledge it, or the broker would send it again at every reconnect.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from typing import Any, NamedTuple

from lamp.net import mqtt_packet as pk

READ = 1 << 20
CAP = 1 << 20  # largest PUBLISH kept (the generated broker config allows far less)
# Remaining Length per packet type a subscriber may receive (sec. 2.2.1, 3.2-3.13), -1:
# variable (PUBLISH), absent: never sent to a client that only subscribes at QoS <= 1.
_SIZES = {2: 2, 3: -1, 9: 3, 11: 2, 13: 0}
_PROTOCOL = b"\x00\x04MQTT\x04"  # Protocol Name and Level, CONNECT's variable header


class ProtocolError(ConnectionError):
    """The broker sent what MQTT 3.1.1 does not allow: the link is dropped."""


class Refused(ConnectionError):
    """CONNACK with a non-zero return code (sec. 3.2.2.3)."""


class Publish(NamedTuple):
    topic: str
    payload: bytes | None  # None: over the session's cap, read past
    pid: int  # 0 at QoS 0
    dup: bool


def connect_packet(
    client_id: str, keepalive: int, user: str | None, password: str | None, clean: bool
) -> bytes:
    # The node's CONNECT encoder (lamp.net.mqtt_packet) always asks for a clean session;
    # the ingest session must outlive its worker, so the bit is cleared (sec. 3.1.2.4).
    buf = pk.connect(client_id, keepalive, user, password)
    if not clean:
        flags = buf.index(_PROTOCOL) + len(_PROTOCOL)
        buf[flags] &= ~0x02
    return bytes(buf)


def unsubscribe_packet(pid: int, filters: list[str]) -> bytes:
    # UNSUBSCRIBE (sec. 3.10): fixed header flags 0010, packet id, the filters.
    body = bytearray(pid.to_bytes(2, "big"))
    for f in filters:
        t = f.encode()
        body += len(t).to_bytes(2, "big") + t
    head = bytearray(5)
    head[0] = 0xA2
    n = pk.put_length(head, 1, len(body))
    return bytes(head[:n]) + bytes(body)


class Session:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        user: str | None = None,
        password: str | None = None,
        ca: str | None = None,
        keepalive: int = 30,
        clean: bool = False,
        cap: int = CAP,
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.user, self.password, self.ca = user, password, ca
        self.keepalive, self.clean, self.cap = keepalive, clean, cap
        self.sock: Any = None
        self._buf = b""
        self._skip = 0  # bytes still to read past of an oversized PUBLISH
        self._pid = 0
        self._subs: dict[int, str] = {}  # SUBSCRIBE packet id -> its filter, until SUBACK
        self._acked = False  # PUBACKs written since the last barrier (close)
        self._pongs = 0  # PINGRESPs read
        self.refused_filters: list[str] = []  # filters the broker would not grant
        self.session_present = False
        self._rx = self._tx = 0.0

    # -- the link ------------------------------------------------------------------------

    def open(self, timeout: float = 10.0) -> bool:
        """Connect and wait for CONNACK; -> the broker's session present flag. OSError
        when unreachable, Refused when the broker says no, ProtocolError on nonsense."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ca is not None:
                ctx = ssl.create_default_context(cafile=self.ca)  # CERT_REQUIRED, host name
                s = ctx.wrap_socket(s, server_hostname=self.host)
            s.sendall(
                connect_packet(self.client_id, self.keepalive, self.user, self.password, self.clean)
            )
            self.sock = s
            self._buf, self._skip = b"", 0
            self._rx = self._tx = time.monotonic()
            deadline = time.monotonic() + timeout
            while True:
                head = self._take_connack()
                if head is not None:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("no CONNACK")
                self._fill(max(deadline - time.monotonic(), 0.01))
            flags, rc = head
            if rc:
                why = pk.REFUSED[rc - 1] if rc <= len(pk.REFUSED) else f"return code {rc}"
                raise Refused(why)
            if flags & 0xFE:
                raise ProtocolError(f"CONNACK flags 0x{flags:02x}")
            self.session_present = bool(flags & 1)
            return self.session_present
        except BaseException:
            self.close(polite=False)
            s.close()
            raise

    def _take_connack(self) -> tuple[int, int] | None:
        b = self._buf
        if len(b) < 4:
            return None
        if b[0] != 0x20 or b[1] != 2:  # the first packet must be CONNACK (sec. 3.2)
            raise ProtocolError(f"expected CONNACK, got type {b[0] >> 4} of {b[1]} bytes")
        self._buf = b[4:]
        return b[2], b[3]

    def _fill(self, timeout: float) -> bool:
        """One recv() onto the buffer; False if nothing came within `timeout` (0: the
        socket is known readable, or an SSL record was only partly in)."""
        self.sock.settimeout(timeout)  # 0.0: non-blocking
        try:
            d = self.sock.recv(READ)
        except TimeoutError:
            return False
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        if not d:
            raise ConnectionResetError("the broker closed the connection")
        self._rx = time.monotonic()
        self._buf = self._buf + d if self._buf else d
        return True

    def close(self, polite: bool = True) -> None:
        s, self.sock = self.sock, None
        if s is None:
            return
        if polite:
            try:
                if self._acked:
                    self._barrier(s)
                s.settimeout(1.0)
                s.sendall(pk.DISCONNECT)  # sec. 3.14: no Will (ingest has none anyway)
            except OSError:
                pass
        try:
            s.close()
        except OSError:
            pass

    def _barrier(self, s: socket.socket) -> None:
        # The PUBACKs just written must reach the broker's session before the socket
        # closes. Seen once under load on mosquitto 2.0.11: two messages acknowledged in
        # a write followed at once by DISCONNECT and close came again in the next session
        # (a broker that drops a client on the hang-up before reading what it had sent
        # would do that). A PINGREQ's PINGRESP (sec. 3.12, 3.13) comes after the broker
        # has read everything sent before it. What arrives meanwhile is not acknowledged: the
        # broker sends it again to the next session.
        s.settimeout(1.0)
        s.sendall(pk.PINGREQ)
        deadline = time.monotonic() + 1.0
        pongs = self._pongs
        self.sock = s
        try:
            while self._pongs == pongs and time.monotonic() < deadline:
                if self._fill(max(0.0, deadline - time.monotonic())):
                    self._parse()
        finally:
            self.sock = None
            self._acked = False

    def _send(self, data: bytes) -> None:
        self.sock.settimeout(30.0)
        self.sock.sendall(data)
        self._tx = time.monotonic()

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    # -- what a subscriber sends ---------------------------------------------------------

    def subscribe(self, filters: list[tuple[str, int]]) -> None:
        """One SUBSCRIBE per filter; a SUBACK refusing one (0x80, sec. 3.9.3) puts it in
        refused_filters when it is read."""
        out = []
        for f, qos in filters:
            pid = self._next_pid()
            self._subs[pid] = f
            out.append(bytes(pk.subscribe(pid, f, qos)))
        self._send(b"".join(out))

    def unsubscribe(self, filters: list[str]) -> None:
        self._send(unsubscribe_packet(self._next_pid(), filters))

    def ack(self, pids: list[int]) -> None:
        """PUBACK these packet ids (sec. 3.4), in one write."""
        if pids:
            self._send(b"".join([b"\x40\x02" + p.to_bytes(2, "big") for p in pids]))
            self._acked = True

    # -- what the broker sends -----------------------------------------------------------

    def read(self, timeout: float, wake: int | None = None) -> list[Publish]:
        """The PUBLISH packets that arrive within `timeout` (all that one read brought);
        keepalive kept on the way. `wake`: a file descriptor that, when readable, ends
        the wait early with nothing (the caller has acknowledgements to send). OSError
        (ConnectionError, ProtocolError) when the link is gone or broken."""
        now = time.monotonic()
        if now - self._tx >= self.keepalive / 2:
            self._send(pk.PINGREQ)
        if now - self._rx > self.keepalive * 1.5:
            raise TimeoutError(f"nothing from the broker for {now - self._rx:.0f} s")
        wait = min(timeout, self.keepalive / 2)
        pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
        if wake is not None and not pending:
            ready = select.select([self.sock, wake], [], [], wait)[0]
            if self.sock not in ready:
                return []
            wait = 0.0  # readable: recv() returns at once
        if not self._fill(wait):
            return []
        return self._parse()

    def _parse(self) -> list[Publish]:
        b = self._buf
        n = len(b)
        i = 0
        out: list[Publish] = []
        if self._skip:
            k = min(self._skip, n)
            self._skip -= k
            i = k
        cap = self.cap
        while n - i >= 2:
            h = b[i]
            # Remaining Length, 1-4 bytes (sec. 2.2.3)
            j = i + 1
            length = 0
            shift = 0
            while True:
                if j >= n:
                    length = -1
                    break
                c = b[j]
                j += 1
                length |= (c & 0x7F) << shift
                if c < 0x80:
                    break
                shift += 7
                if shift == 28:
                    raise ProtocolError("remaining length over 4 bytes")
            if length < 0:
                break
            t = h >> 4
            if t == 3:
                if h & 0x06 > 0x02:  # QoS 3 is malformed, QoS 2 never granted (sec. 3.3.1.2)
                    raise ProtocolError(f"PUBLISH QoS {h >> 1 & 3}")
                if length > cap:
                    got = self._oversized(b, j, n, h, length)
                    if got is None:
                        break  # its header is not all here yet
                    out.append(got[0])
                    i = got[1]
                    continue
                end = j + length
                if end > n:
                    break
                tl = b[j] << 8 | b[j + 1] if length >= 2 else length + 1
                k = j + 2 + tl
                pid = 0
                if h & 0x06:
                    if k + 2 > end:
                        raise ProtocolError("malformed PUBLISH")
                    pid = b[k] << 8 | b[k + 1]
                    if not pid:  # sec. 2.3.1
                        raise ProtocolError("PUBLISH with packet id 0")
                    k += 2
                if k > end or tl == 0:  # beyond the packet, or an empty Topic Name
                    raise ProtocolError("malformed PUBLISH")
                topic = b[j + 2 : j + 2 + tl].decode("utf-8", "replace")
                out.append(Publish(topic, b[k:end], pid, bool(h & 0x08)))
                i = end
                continue
            size = _SIZES.get(t)
            if size is None:
                raise ProtocolError(f"unexpected packet type {t}")
            if h & 0x0F:
                raise ProtocolError(f"type {t} with flags 0x{h & 0x0F:x}")
            if length != size:
                raise ProtocolError(f"type {t} of {length} bytes")
            if j + length > n:
                break
            if t == 9:  # SUBACK: packet id, return code
                f = self._subs.pop(b[j] << 8 | b[j + 1], None)
                if b[j + 2] == 0x80 and f is not None:
                    self.refused_filters.append(f)
            elif t == 13:
                self._pongs += 1
            elif t == 2:
                raise ProtocolError("a second CONNACK")
            i = j + length
        self._buf = b[i:] if i < n else b""
        return out

    def _oversized(self, b: bytes, j: int, n: int, h: int, length: int):
        # A PUBLISH over the cap: its topic and packet id, then read past the rest.
        if j + 2 > n:
            return None
        tl = b[j] << 8 | b[j + 1]
        k = j + 2 + tl + (2 if h & 0x06 else 0)
        if k > n:
            return None
        pid = b[k - 2] << 8 | b[k - 1] if h & 0x06 else 0
        topic = b[j + 2 : j + 2 + tl].decode("utf-8", "replace")
        end = j + length
        if end > n:
            self._skip = end - n
            end = n
        return Publish(topic, None, pid, bool(h & 0x08)), end

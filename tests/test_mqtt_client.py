"""lamp.net.mqtt (the node's MQTT 3.1.1 client) in MicroPython against a real mosquitto, and
against a fake broker written here that sends what mosquitto never would.

The MicroPython side is tests/firmware/check_mqtt.py's node(): it prints a STATE line on
every change and MSG lines for what it receives, so the tests wait for lines (and for
paho callbacks) with timeouts, never sleep.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from observer import Observer

from lanterna.broker.mosquitto import BINARY, free_port
from mpharness import firmware_command, run_firmware

CHECK = Path(__file__).parent / "firmware" / "check_mqtt.py"
USER, PASSWORD = "n1", "n1-test-secret"
BASE = "lt/test/n1/"
WAIT = 20.0


# -- the node and the observer -------------------------------------------------------------


@pytest.fixture
def broker(mosquitto):
    mosquitto.add_user(USER, PASSWORD)
    return mosquitto


def start_node(spawn, port: int, password: str = PASSWORD, **env: int | str):
    extra = {"MQTT_PORT": str(port), "MQTT_USER": USER, "MQTT_PASS": password}
    extra.update({f"MQTT_{k.upper()}": str(v) for k, v in env.items()})
    argv, penv, cwd = firmware_command(CHECK, "node", extra_env=extra)
    return spawn(argv, env=penv, cwd=cwd)


def state(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def wait_state(
    node, timeout: float = WAIT, least: dict[str, int] | None = None, **want: int
) -> dict[str, int]:
    """The first STATE line whose fields equal `want` and are at least `least`.

    STATE lines are printed on change, polled: a count may step by more than one between
    two lines, so a growing count is waited for with `least`, never with an exact value.
    """
    deadline = time.monotonic() + timeout
    start = 0
    while True:
        line = node.wait_for("STATE", max(0.01, deadline - time.monotonic()), start)
        start = node.lines.index(line, start) + 1
        s = state(line)
        if all(s.get(k) == v for k, v in want.items()) and all(
            s.get(k, -1) >= v for k, v in (least or {}).items()
        ):
            return s


@pytest.fixture
def observe(broker) -> Iterator:
    """observe(client_id=..., clean=...) -> an Observer (tests/observer.py) of the node's
    topics, logged in as the controller; every one is stopped when the test ends."""
    made: list[Observer] = []

    def _observe(**kwargs) -> Observer:
        o = Observer(broker, [BASE + "#"], **kwargs)
        made.append(o)
        return o

    yield _observe
    for o in made:
        o.stop()


# -- against mosquitto ------------------------------------------------------------------


def test_node_connects_with_credentials_and_announces_itself_online(broker, observe, spawn):
    obs = observe()
    node = start_node(spawn, broker.port)
    wait_state(node, connected=1)
    assert obs.first(BASE + "status", b"online").qos == 1
    # retained: a subscriber arriving later still learns the node is online
    late = observe(client_id="late")
    assert late.first(BASE + "status", b"online").retain is True


def test_wrong_password_is_refused_counted_and_retried(broker, spawn):
    node = start_node(spawn, broker.port, password="wrong", backoff_s=1)
    line = node.wait_for("Refused not authorized (CONNACK 5)")
    assert "W mqtt" in line
    s = wait_state(node, least={"refused": 2})
    assert s["connected"] == 0 and s["connects"] == 0 and s["failures"] == s["refused"]
    assert not any("wrong" in line for line in node.lines)  # the password is never logged


def test_broker_publishes_the_will_when_the_node_dies(broker, observe, spawn):
    obs = observe()
    node = start_node(spawn, broker.port)
    obs.first(BASE + "status", b"online")
    node.p.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must send the Will
    node.p.wait(WAIT)
    assert obs.first(BASE + "status", b"offline").qos == 1
    assert observe(client_id="late").first(BASE + "status", b"offline").retain is True


def test_qos1_publish_is_acknowledged_and_commands_are_delivered(broker, observe, spawn):
    obs = observe()
    node = start_node(spawn, broker.port)
    wait_state(node, connected=1, sent=1, pending=0)  # "online" (QoS 1) got its PUBACK
    obs.publish(BASE + "cmd", b"echo:hello", qos=1)
    assert node.wait_for("MSG " + BASE + "cmd 10 echo:hello")
    ack = obs.first(BASE + "ack", b"hello")
    assert (ack.qos, ack.retain) == (1, False)
    wait_state(node, received=1, sent=2, pending=0)


def test_clean_disconnect_leaves_no_will(broker, observe, spawn):
    obs = observe()
    node = start_node(spawn, broker.port)
    obs.first(BASE + "status", b"online")
    obs.publish(BASE + "cmd", b"bye")
    node.wait_for("STOPPED connected=0")
    assert node.p.wait(WAIT) == 0
    # the broker saw DISCONNECT: the retained status is still "online", no Will was sent
    obs.publish(BASE + "marker", b"after")
    obs.first(BASE + "marker", b"after")
    assert (BASE + "status", b"offline") not in [m[:2] for m in obs.msgs]
    assert observe(client_id="late").first(BASE + "status", b"online").retain is True


def test_outbox_is_delivered_in_order_after_a_broker_restart(broker, observe, spawn):
    # A persistent session: the broker keeps the observer's QoS 1 messages across its
    # restart, so nothing the node sends after the outage can be missed.
    obs = observe(client_id="keeper", clean=False)
    node = start_node(spawn, broker.port, outage_n=5, backoff_s=1)
    wait_state(node, connected=1, pending=0)
    broker.stop()
    queued = node.wait_for("QUEUED")
    assert state(queued) == {"dropped": 0, "pending": 5}
    broker.start()
    assert state(node.wait_for("REPORTED")) == {"dropped": 0}
    obs.first(BASE + "report", b"dropped=0")
    tele = [m[1] for m in obs.msgs if m[0] == BASE + "tele"]
    assert tele == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert wait_state(node, connected=1, connects=2, pending=0)["failures"] >= 1


def test_outage_longer_than_the_outbox_keeps_the_newest_and_counts_the_dropped(
    broker, observe, spawn
):
    obs = observe(client_id="keeper", clean=False)
    node = start_node(spawn, broker.port, outage_n=20, outbox=8, backoff_s=1)
    wait_state(node, connected=1, pending=0)
    broker.stop()
    assert state(node.wait_for("QUEUED")) == {"dropped": 12, "pending": 8}
    broker.start()
    # on reconnect the node publishes "online" first thing: one more of the oldest goes
    assert state(node.wait_for("REPORTED")) == {"dropped": 13}
    obs.first(BASE + "report", b"dropped=13")
    tele = [m[1] for m in obs.msgs if m[0] == BASE + "tele"]
    assert tele == [b"m%d" % i for i in range(13, 20)]


def test_connected_client_heap(broker):
    proc = run_firmware(
        CHECK,
        "heap",
        extra_env={"MQTT_PORT": str(broker.port), "MQTT_USER": USER, "MQTT_PASS": PASSWORD},
    )
    assert proc.returncode == 0 and "MPRUNNER-PASS" in proc.stdout, proc.stdout + proc.stderr
    m = re.search(r"HEAP asyncio=(\d+) module=(\d+) client=(\d+) free=(\d+)", proc.stdout)
    assert m, proc.stdout
    print(m.group(0))
    assert int(m.group(3)) < 7168, m.group(0)


# -- against a fake broker that misbehaves ------------------------------------------------


class Conn:
    """One client connection to the fake broker, MQTT 3.1.1 framing by hand."""

    def __init__(self, sock: socket.socket, n: int) -> None:
        self.sock = sock
        self.n = n
        sock.settimeout(WAIT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("client closed")
            data += chunk
        return data

    def packet(self) -> tuple[int, bytes]:
        """(byte 1, body) of the next packet from the client."""
        first = self._exact(1)[0]
        length, shift = 0, 0
        while True:
            b = self._exact(1)[0]
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return first, self._exact(length)

    def expect(self, ptype: int) -> tuple[int, bytes]:
        first, body = self.packet()
        assert first >> 4 == ptype, f"expected type {ptype}, got {first:#x} {body!r}"
        return first, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed_by_client(self) -> bool:
        """True once the client closes the link (whatever it sends before, e.g. PINGREQ)."""
        try:
            while True:
                self.packet()
        except EOFError:
            return True

    def serve(self) -> None:
        """A quiet, correct broker until the client goes: PINGRESP, PUBACK."""
        while True:
            try:
                first, body = self.packet()
            except (EOFError, OSError):
                return
            if first == 0xC0:
                self.send(b"\xd0\x00")
            elif first >> 4 == 3 and first & 0x06:
                self.puback(Publish.parse(first, body).pid)

    def handshake(self, ack_online: bool = True) -> Publish:
        """CONNECT -> CONNACK, SUBSCRIBE -> SUBACK, and the node's "online" PUBLISH."""
        first, body = self.expect(1)
        assert body[:7] == b"\x00\x04MQTT\x04"
        self.send(b"\x20\x02\x00\x00")
        _, body = self.expect(8)
        self.send(b"\x90\x03" + body[:2] + b"\x01")
        online = Publish.parse(*self.expect(3))
        assert (online.topic, online.payload) == (BASE + "status", b"online")
        if ack_online:
            self.puback(online.pid)
        return online

    def puback(self, pid: int) -> None:
        self.send(b"\x40\x02" + struct.pack(">H", pid))


class Publish:
    def __init__(self, first: int, topic: str, pid: int, payload: bytes) -> None:
        self.dup, self.qos, self.retain = first >> 3 & 1, first >> 1 & 3, first & 1
        self.topic, self.pid, self.payload = topic, pid, payload

    @classmethod
    def parse(cls, first: int, body: bytes) -> Publish:
        (tl,) = struct.unpack(">H", body[:2])
        off = 2 + tl
        pid = 0
        if first & 0x06:
            (pid,) = struct.unpack(">H", body[off : off + 2])
            off += 2
        return cls(first, body[2 : 2 + tl].decode(), pid, body[off:])


def publish(topic: str, payload: bytes, qos: int = 0, pid: int = 1) -> bytes:
    t = topic.encode()
    var = struct.pack(">H", len(t)) + t + (struct.pack(">H", pid) if qos else b"")
    body = var + payload
    n, length = len(body), b""
    while True:
        b, n = n & 0x7F, n >> 7
        length += bytes([b | 0x80 if n else b])
        if not n:
            break
    return bytes([0x30 | qos << 1]) + length + body


class FakeBroker:
    """A TCP server on 127.0.0.1 that runs `script(conn)` for each connection in turn.

    A script returning True ends the test's part (done is set) and leaves a connection
    that behaves from then on; any other return closes the connection.
    """

    def __init__(self, script) -> None:
        self.script = script
        self.errors: list[BaseException] = []
        self.conns: list[Conn] = []
        self.done = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        n = 0
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            n += 1
            conn = Conn(s, n)
            self.conns.append(conn)
            try:
                if self.script(conn) is True:
                    self.done.set()
                    conn.serve()
            except Exception as e:  # noqa: BLE001 -- reported by the test
                self.errors.append(e)
                self.done.set()
            finally:
                s.close()

    def wait(self, node) -> None:
        finished = self.done.wait(WAIT)
        out = "\n".join(node.lines)
        assert finished, f"the fake broker's script did not finish; node:\n{out}"
        assert not self.errors, f"{self.errors!r}; node:\n{out}"

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.conns:
            conn.sock.close()
        self.thread.join(WAIT)


@pytest.fixture
def fake() -> Iterator:
    made: list[FakeBroker] = []

    def _fake(script) -> FakeBroker:
        made.append(FakeBroker(script))
        return made[-1]

    yield _fake
    for f in made:
        f.close()


def test_packets_split_across_reads_are_reassembled(fake, spawn):
    got: dict[str, object] = {}

    def script(conn: Conn):
        conn.handshake()
        data = publish(BASE + "cmd", b"echo:split", qos=1, pid=7)
        conn.send(data[:3])  # the fixed header and 1 byte of the topic length
        conn.expect(12)  # the client is alive and idle with half a packet: PINGREQ
        conn.send(data[3:])
        conn.send(b"\xd0\x00")  # PINGRESP after the PUBLISH: packets never interleave
        got["puback"] = conn.expect(4)[1]
        ack = Publish.parse(*conn.expect(3))
        got["ack"] = (ack.topic, ack.payload, ack.qos)
        conn.puback(ack.pid)
        return True

    broker = fake(script)
    node = start_node(spawn, broker.port, keepalive=1)
    broker.wait(node)
    node.wait_for("MSG " + BASE + "cmd 10 echo:split")
    assert got == {"puback": b"\x00\x07", "ack": (BASE + "ack", b"split", 1)}
    wait_state(node, connected=1, connects=1, failures=0, pending=0)


# What a broken or hostile broker might send after CONNACK; each must drop the link.
MALFORMED = [
    b"\x30\xff\xff\xff\xff\x7f",  # Remaining Length of 5 bytes (sec. 2.2.3)
    b"\x00\x00",  # reserved type 0 (sec. 2.2.1)
    b"\xf0\x00",  # reserved type 15
    b"\x10\x00",  # CONNECT: only a client sends it
    b"\x20\x02\x00\x00",  # a second CONNACK (sec. 3.2)
    b"\x40\x03\x00\x01\x00",  # PUBACK of 3 bytes (sec. 3.4)
    b"\x92\x03\x00\x01\x00",  # SUBACK with reserved flags set (sec. 2.2.2)
    b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH QoS 3 (sec. 3.3.1.2)
    b"\x30\x04\x00\x09ab",  # Topic Name longer than the packet
    b"\x32\x03\x00\x01a",  # QoS 1 PUBLISH without its packet identifier
]


def test_malformed_packets_drop_the_link_and_the_client_reconnects(fake, spawn):
    def script(conn: Conn):
        conn.handshake()
        if conn.n <= len(MALFORMED):
            conn.send(MALFORMED[conn.n - 1])
            assert conn.closed_by_client()
            return None
        conn.send(publish(BASE + "cmd", b"alive"))
        return True

    broker = fake(script)
    node = start_node(spawn, broker.port, backoff_s=1)
    broker.wait(node)
    node.wait_for("MSG " + BASE + "cmd 5 alive", timeout=30)
    s = wait_state(node, connected=1, connects=len(MALFORMED) + 1, received=1)
    assert s["failures"] == len(MALFORMED)


def test_oversized_publish_is_skipped_acknowledged_and_the_link_kept(fake, spawn):
    pids: list[int] = []

    def script(conn: Conn):
        conn.handshake()
        conn.send(publish(BASE + "cmd", b"x" * 5000, qos=1, pid=9))
        pids.append(struct.unpack(">H", conn.expect(4)[1])[0])
        conn.send(publish(BASE + "cmd", b"echo:small", qos=1, pid=10))
        pids.append(struct.unpack(">H", conn.expect(4)[1])[0])
        ack = Publish.parse(*conn.expect(3))
        conn.puback(ack.pid)
        return True

    broker = fake(script)
    node = start_node(spawn, broker.port, max_payload=1024)
    broker.wait(node)
    assert pids == [9, 10]
    assert "skipped a 5000-byte payload" in node.wait_for("W mqtt")
    node.wait_for("MSG " + BASE + "cmd 10 echo:small")
    wait_state(node, connected=1, connects=1, failures=0, skipped=1, received=1)


def test_silent_broker_is_detected_by_keepalive(fake, spawn):
    pings: list[int] = []

    def script(conn: Conn):
        conn.handshake()
        if conn.n == 1:  # answers nothing from now on; the client must give up on it
            while True:
                try:
                    first, _ = conn.packet()
                except EOFError:
                    return None
                pings.append(first)
        return True

    broker = fake(script)
    node = start_node(spawn, broker.port, keepalive=1, backoff_s=1)
    broker.wait(node)
    assert pings and set(pings) == {0xC0}  # PINGREQ, unanswered
    assert "broker silent" in node.wait_for("W mqtt")
    wait_state(node, connected=1, connects=2, failures=1)


def test_unacknowledged_qos1_is_sent_again_with_dup_after_reconnect(fake, spawn):
    seen: list[Publish] = []

    def script(conn: Conn):
        seen.append(conn.handshake(ack_online=conn.n > 1))
        if conn.n == 1:
            return None  # closes the link: that PUBLISH was never acknowledged
        again = Publish.parse(*conn.expect(3))  # on_connect's new "online"
        conn.puback(again.pid)
        seen.append(again)
        return True

    broker = fake(script)
    node = start_node(spawn, broker.port, backoff_s=1)
    broker.wait(node)
    first, resent, fresh = seen
    assert (first.dup, first.qos, first.retain) == (0, 1, 1)
    assert (resent.dup, resent.pid, resent.retain) == (1, first.pid, 1)
    assert fresh.dup == 0 and fresh.pid != first.pid
    wait_state(node, connected=1, connects=2, pending=0)


def test_unacknowledged_qos1_is_sent_again_with_dup_after_the_retry_time(fake, spawn):
    seen: list[Publish] = []

    def script(conn: Conn):
        seen.append(conn.handshake(ack_online=False))
        again = Publish.parse(*conn.expect(3))
        seen.append(again)
        conn.puback(again.pid)
        return True

    broker = fake(script)
    node = start_node(spawn, broker.port, retry_ms=300)
    broker.wait(node)
    first, again = seen
    assert (first.dup, again.dup, again.pid, again.payload) == (0, 1, first.pid, b"online")
    wait_state(node, connected=1, connects=1, pending=0, sent=1)


@pytest.mark.parametrize(
    ("inflight", "outage", "dropped"),
    [
        (3, 3, 0),  # all fit: the three in flight are sent again (DUP) before the rest
        (3, 20, 16),  # 23 for 8 slots, and "online" pushes one more out on reconnect
    ],
)
def test_messages_in_flight_at_a_broker_death_then_an_outage_longer_than_the_outbox(
    fake, spawn, inflight: int, outage: int, dropped: int
):
    # A node's pattern (tests/test_node_network.py): QoS 1 messages written and never
    # acknowledged when the broker dies, an outage (a reconnect refused) with more
    # messages than the outbox holds, then a broker that works. It must get the newest,
    # in order; `dropped` counts exactly the rest, and later publishes drop nothing.
    first: list[Publish] = []
    after: list[Publish] = []

    def script(conn: Conn):
        if conn.n == 1:
            conn.handshake()
            first.extend(Publish.parse(*conn.expect(3)) for _ in range(inflight))
            return None  # dies with them unacknowledged
        if conn.n == 2:
            conn.expect(1)
            return None  # still down: CONNECT, then the link drops
        conn.expect(1)
        conn.send(b"\x20\x02\x00\x00")
        _, body = conn.expect(8)
        conn.send(b"\x90\x03" + body[:2] + b"\x01")
        while True:
            p = Publish.parse(*conn.expect(3))
            after.append(p)
            conn.puback(p.pid)
            if p.topic == BASE + "report2":
                return True

    broker = fake(script)
    node = start_node(
        spawn,
        broker.port,
        inflight_n=inflight,
        outage_n=outage,
        later_n=5,
        outbox=8,
        backoff_s=1,
    )
    assert state(node.wait_for("INFLIGHT")) == {"pending": inflight}
    queued = state(node.wait_for("QUEUED"))
    total = inflight + outage
    assert queued == {"dropped": max(0, total - 8), "pending": min(8, total)}
    assert state(node.wait_for("REPORTED")) == {"dropped": dropped}
    assert state(node.wait_for("LATER")) == {"dropped": dropped}
    broker.wait(node)
    assert [(p.payload, p.dup) for p in first] == [(b"f%d" % i, 0) for i in range(inflight)]
    names = [b"f%d" % i for i in range(inflight)] + [b"m%d" % i for i in range(outage)]
    kept = names[len(names) - (8 - 1) :] if dropped else names
    assert [p.payload for p in after] == [
        *kept,
        b"online",
        b"dropped=%d" % dropped,
        *[b"l%d" % i for i in range(5)],
        b"dropped=%d" % dropped,
    ]
    resent = {p.payload: p for p in after if p.payload.startswith(b"f")}
    for p in first:  # sent again with DUP set and the packet id of the first time
        if p.payload in resent:
            assert (resent[p.payload].dup, resent[p.payload].pid) == (1, p.pid)
    assert all(p.dup == 0 for p in after if not p.payload.startswith(b"f"))
    wait_state(node, connected=1, connects=2, pending=0, dropped=dropped)


# -- over TLS -----------------------------------------------------------------------------


def self_signed(root: Path, name: str) -> tuple[Path, Path, Path]:
    """A self-signed certificate for 127.0.0.1 -> (cert PEM, key PEM, cert DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = root / f"{name}.pem", root / f"{name}.key", root / f"{name}.der"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return paths


@pytest.fixture
def tls_broker(tmp_path, spawn):
    """mosquitto with a TLS listener (and a plain one for the observer) -> (tls, plain, CA)."""
    cert, key, der = self_signed(tmp_path, "broker")
    tls_port, plain_port = free_port(), free_port()
    conf = tmp_path / "tls.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nallow_anonymous true\nlog_dest stderr\n"
        f"listener {plain_port} 127.0.0.1\n"
        f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
    )
    broker = spawn([BINARY, "-c", str(conf)])
    broker.wait_for(f"listen socket on port {tls_port}")
    broker.wait_for(f"listen socket on port {plain_port}")
    return tls_port, plain_port, der


def test_node_connects_over_tls_and_verifies_the_broker(tls_broker, spawn):
    tls_port, plain_port, ca = tls_broker
    obs = Observer(None, [BASE + "#"], port=plain_port, password="controller-test-secret")
    try:
        node = start_node(spawn, tls_port, tls_ca=str(ca))
        wait_state(node, connected=1, pending=0)
        obs.first(BASE + "status", b"online")
    finally:
        obs.stop()


def test_tls_broker_with_an_unknown_certificate_is_refused(tls_broker, spawn, tmp_path):
    tls_port, _, _ = tls_broker
    other = self_signed(tmp_path, "other")[2]
    node = start_node(spawn, tls_port, tls_ca=str(other), backoff_s=1)
    assert "not correctly signed by the trusted CA" in node.wait_for("W mqtt")
    assert wait_state(node, least={"failures": 2})["connects"] == 0

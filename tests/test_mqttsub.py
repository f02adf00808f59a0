"""serve's MQTT 3.1.1 session (lanterna.fleet.mqttsub): the parser byte by byte, and the
session against a real mosquitto, plain and over TLS from `lanterna broker config --tls`:
a persistent session that keeps what arrives while it is away, PUBACKs only when told,
a PUBLISH over the cap read past and acknowledged, and the broker's refusals named."""

from __future__ import annotations

import json
import ssl
import time

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner

from lanterna.broker.mosquitto import Generated, free_port
from lanterna.cli import cli
from lanterna.fleet import mqttsub as M
from lanterna.store.db import Store

WAIT = 20.0


def publish_packet(topic: str, payload: bytes, pid: int = 0, dup: bool = False) -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (pid.to_bytes(2, "big") if pid else b"") + payload
    head = bytearray(5)
    head[0] = 0x30 | (0x08 if dup else 0) | (0x02 if pid else 0)
    n = M.pk.put_length(head, 1, len(body))
    return bytes(head[:n]) + body


def parse(data: bytes, cap: int = M.CAP, step: int | None = None) -> list[M.Publish]:
    """What a session parses from `data` arriving `step` bytes at a time."""
    s = M.Session("127.0.0.1", 1, "t", cap=cap)
    out: list[M.Publish] = []
    step = step or len(data)
    for i in range(0, len(data), step):
        s._buf += data[i : i + step]
        out += s._parse()
    assert s._buf == b"" and s._skip == 0
    return out


def test_packets_split_at_every_byte_parse_alike():
    stream = (
        publish_packet("a/b", b"x" * 200, pid=7)
        + b"\x90\x03\x00\x01\x01"  # SUBACK granted QoS 1
        + publish_packet("c", b"", pid=0)
        + b"\xd0\x00"  # PINGRESP
        + publish_packet("d/e", b"y" * 20000, pid=65535, dup=True)  # 3-byte length
    )
    want = [
        M.Publish("a/b", b"x" * 200, 7, False),
        M.Publish("c", b"", 0, False),
        M.Publish("d/e", b"y" * 20000, 65535, True),
    ]
    assert parse(stream) == want
    for step in (1, 2, 3, 7, 100):
        assert parse(stream, step=step) == want, step


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
        (b"\x34\x05\x00\x01a\x00\x01", "QoS 2"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet id 0"),
        (b"\x32\x03\x00\x05a", "malformed PUBLISH"),  # topic beyond the packet
        (b"\x30\x02\x00\x00", "malformed PUBLISH"),  # empty topic
        (b"\x30\xff\xff\xff\xff\x01", "over 4 bytes"),
        (b"\x10\x00", "unexpected packet type 1"),  # CONNECT from a broker
        (b"\x40\x02\x00\x01", "unexpected packet type 4"),  # PUBACK: we never publish
        (b"\x91\x03\x00\x01\x01", "flags"),
        (b"\xd0\x01\x00", "of 1 bytes"),
        (b"\x20\x02\x00\x00", "second CONNACK"),
    ],
)
def test_malformed_packets_drop_the_link(data, why):
    with pytest.raises(M.ProtocolError, match=why):
        parse(data)
    assert issubclass(M.ProtocolError, OSError)  # the session's callers drop the link


def test_a_publish_over_the_cap_is_read_past_and_keeps_its_packet_id():
    big = publish_packet("n/big", b"z" * 5000, pid=9)
    after = publish_packet("n/ok", b"fine", pid=10)
    for step in (None, 1, 64, 1000):
        got = parse(big + after, cap=1000, step=step)
        assert got == [M.Publish("n/big", None, 9, False), M.Publish("n/ok", b"fine", 10, False)]


def test_a_refused_subscription_is_named():
    s = M.Session("127.0.0.1", 1, "t")
    s._subs = {3: "lanterna/v1/+/+/tele", 4: "$SYS/x"}
    s._buf = b"\x90\x03\x00\x03\x80\x90\x03\x00\x04\x00"
    assert s._parse() == []
    assert s.refused_filters == ["lanterna/v1/+/+/tele"]


def test_connect_packet_asks_for_a_persistent_session_unless_clean():
    kept = M.connect_packet("serve-w0", 30, "controller", "pw", clean=False)
    clean = M.connect_packet("serve-w0", 30, "controller", "pw", clean=True)
    at = kept.index(b"\x00\x04MQTT\x04") + 7
    assert kept[at] == 0xC0 and clean[at] == 0xC2  # user, password; Clean Session bit
    assert kept[:at] + kept[at + 1 :] == clean[:at] + clean[at + 1 :]


# -- against mosquitto -------------------------------------------------------------------


def publisher(port: int, password: str, ca: str | None = None) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    c.username_pw_set("controller", password)
    if ca:
        c.tls_set(ca_certs=ca)
    c.connect("127.0.0.1" if not ca else "localhost", port)
    c.loop_start()
    return c


def send(c: mqtt.Client, topic: str, payloads: list[bytes]) -> None:
    infos = [c.publish(topic, p, qos=1) for p in payloads]
    for i in infos:
        i.wait_for_publish(WAIT)
    assert all(i.is_published() for i in infos)


def collect(s: M.Session, n: int, ack: bool = True) -> list[M.Publish]:
    got: list[M.Publish] = []
    deadline = time.monotonic() + WAIT
    while len(got) < n and time.monotonic() < deadline:
        pubs = s.read(0.5)
        got += pubs
        if ack:
            s.ack([p.pid for p in pubs if p.pid])
    return got


def test_persistent_session_keeps_what_was_not_acknowledged(mosquitto):
    pw = mosquitto.users["controller"]
    s = M.Session("127.0.0.1", mosquitto.port, "serve-test", "controller", pw)
    assert s.open() is False  # a new session
    s.subscribe([("t/+", 1)])
    pub = publisher(mosquitto.port, pw)
    try:
        send(pub, "t/a", [b"%d" % k for k in range(5)])
        first = collect(s, 5, ack=False)
        assert [p.payload for p in first] == [b"%d" % k for k in range(5)]
        s.ack([first[0].pid, first[1].pid])  # two committed, three not
        s.close()
        send(pub, "t/b", [b"away"])  # while the session's client is away
        s = M.Session("127.0.0.1", mosquitto.port, "serve-test", "controller", pw)
        assert s.open() is True  # the broker kept it
        again = collect(s, 4)
        assert sorted(p.payload or b"" for p in again) == [b"2", b"3", b"4", b"away"]
        assert all(p.dup for p in again if p.payload != b"away")
        s.close()
        s = M.Session("127.0.0.1", mosquitto.port, "serve-test", "controller", pw)
        s.open()
        assert s.read(1.0) == []  # nothing left once all are acknowledged
    finally:
        s.close()
        pub.loop_stop()
        pub.disconnect()


def test_an_oversized_publish_is_acknowledged_and_not_sent_again(mosquitto):
    pw = mosquitto.users["controller"]
    s = M.Session("127.0.0.1", mosquitto.port, "serve-cap", "controller", pw, cap=1000)
    s.open()
    s.subscribe([("t/#", 1)])
    pub = publisher(mosquitto.port, pw)
    try:
        send(pub, "t/big", [b"z" * 300000])
        send(pub, "t/ok", [b"fine"])
        got = collect(s, 2)
        assert [(p.topic, p.payload) for p in got] == [("t/big", None), ("t/ok", b"fine")]
        s.close()
        s = M.Session("127.0.0.1", mosquitto.port, "serve-cap", "controller", pw, cap=1000)
        s.open()
        assert s.read(1.0) == []
    finally:
        s.close()
        pub.loop_stop()
        pub.disconnect()


def test_a_wrong_password_is_refused_by_name(mosquitto):
    s = M.Session("127.0.0.1", mosquitto.port, "serve-x", "controller", "not-it")
    with pytest.raises(M.Refused, match="not authorized|bad user name or password"):
        s.open()
    assert s.sock is None


@pytest.fixture
def tls_broker(tmp_path):
    """`lanterna broker config --tls` for a store, started as generated; -> (port, CA
    path, controller password, the store's home)."""
    home = tmp_path / "home"
    with Store(home / "lanterna.db") as st:
        st.put_site("s", 51.48, 0.0, "Europe/London")
    port, plain = free_port(), free_port()
    out = tmp_path / "broker"
    argv = ["--db", str(home / "lanterna.db"), "broker", "config", "--out", str(out), "--tls"]
    argv += ["--tls-port", str(port), "--plain-too", "--port", str(plain), "--bind", "127.0.0.1"]
    r = CliRunner().invoke(cli, argv)
    assert r.exit_code == 0, r.output
    cfg = json.loads((home / "config.json").read_text())
    with Generated(out, [port, plain]):
        yield port, str(out / "ca.crt"), cfg["broker_password"], home


def test_over_tls_the_broker_is_verified_and_messages_arrive(tls_broker, tmp_path):
    port, ca, pw, _home = tls_broker
    s = M.Session("localhost", port, "serve-tls", "controller", pw, ca=ca)
    s.open()
    s.subscribe([("lanterna/v1/+/+/tele", 1)])
    pub = publisher(port, pw, ca)
    try:
        send(pub, "lanterna/v1/s/n1/tele", [b"%d" % k for k in range(300)])
        got = collect(s, 300)
        assert [p.payload for p in got] == [b"%d" % k for k in range(300)]
    finally:
        s.close()
        pub.loop_stop()
        pub.disconnect()
    # another CA: refused before a byte of MQTT (nothing trusted blindly)
    other = tmp_path / "other"
    r = CliRunner().invoke(
        cli,
        ["--db", str(tmp_path / "o.db"), "broker", "config", "--out", str(other), "--tls"],
    )
    assert r.exit_code == 0, r.output
    bad = M.Session("localhost", port, "serve-tls2", "controller", pw, ca=str(other / "ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        bad.open()


def test_serve_ingests_over_tls(tls_broker, tmp_path):
    """The ingest worker on this session over TLS, into a store: every message once."""
    import threading
    from pathlib import Path

    from lanterna.context import Broker
    from lanterna.fleet.ingest import Ingest

    port, ca, pw, _home = tls_broker
    db = tmp_path / "serve.db"
    Store(db).close()
    ing = Ingest(str(db), Broker("localhost", port, "controller", pw, True, Path(ca)))
    ing.start()
    pub = publisher(port, pw, ca)
    try:
        payloads = [
            json.dumps({"v": 1, "ts": f"2026-12-01T00:{k // 60:02d}:{k % 60:02d}Z", "level": k})
            for k in range(500)
        ]
        send(pub, "lanterna/v1/s/n1/tele", [p.encode() for p in payloads])
        deadline = time.monotonic() + WAIT
        while ing.stats.stored < 500 and time.monotonic() < deadline:
            threading.Event().wait(0.05)  # polling the worker's count, bounded
    finally:
        ing.stop()
        pub.loop_stop()
        pub.disconnect()
    with Store(db) as st:
        assert st.telemetry_count() == 500
        assert ing.stats.received == 500 and ing.stats.skipped == 0

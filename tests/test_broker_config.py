"""`lanterna broker config` against a real mosquitto started with what it generates: every
node kept in its own lane, nobody else let in, TLS that clients can verify, and secrets
that stay secret and stay put across re-runs.

Denied publishes are silent in mosquitto 2.0 (a QoS 1 publish is PUBACKed and dropped),
so each negative test has a positive marker on the same path: a message that is allowed
and sent after the denied ones. mosquitto handles one client's packets in order and
delivers to one subscriber in order, so once the marker has arrived anything allowed
before it would have arrived too.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from observer import Observer

from lanterna.broker import config as bc
from lanterna.broker.mosquitto import Generated, free_port
from lanterna.cli import cli
from lanterna.store.db import Store

# node -> site: two nodes of one site, and a third at another site
NODES = {"gw-001": "greenwich", "gw-002": "greenwich", "pr-001": "porta-romana"}


def topic(node: str, leaf: str, site: str | None = None) -> str:
    return f"lanterna/v1/{site or NODES[node]}/{node}/{leaf}"


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    with Store(h / "lanterna.db") as s:
        s.put_site("greenwich", 51.4826, 0.0077, "Europe/London")
        s.put_site("porta-romana", 45.45, 9.2, "Europe/Rome")
        for i, (node, site) in enumerate(NODES.items()):
            s.put_node(node, site, "sim-s3", bytes([i]) * 32)
    return h


def configure(home: Path, out: Path, *args: str) -> tuple[dict, str]:
    """Run `lanterna broker config --json`; -> (its JSON, everything it printed)."""
    r = CliRunner().invoke(
        cli, ["--db", str(home / "lanterna.db"), "broker", "config", "--out", str(out), *args]
    )
    assert r.exit_code == 0, r.output
    return (json.loads(r.stdout) if "--json" in args else {}), r.output


def secrets_of(home: Path) -> dict[str, str]:
    creds = json.loads((home / "credentials.json").read_text())["nodes"]
    out = {n: c["mqtt_password"] for n, c in creds.items()}
    out["controller"] = json.loads((home / "config.json").read_text())["broker_password"]
    return out


def running(out: Path, ports: list[int]) -> Generated:
    """mosquitto with the generated config, until every listener accepts; always stopped."""
    return Generated(out, ports)


def peer(port: int, user: str | None, password: str | None, **tls) -> Observer:
    """A paho client (MQTT 3.1.1, as the nodes speak) that keeps what it receives
    (tests/observer.py): subscribed to nothing yet, and possibly refused (`ok`)."""
    return Observer(
        None,
        (),
        port=port,
        user=user,
        password=password,
        tls=tls or None,
        must_connect=False,
        timeout=10,
    )


@contextmanager
def peers(port: int, secrets: dict[str, str], *users: str, **tls) -> Iterator[list[Observer]]:
    made = []
    try:
        for u in users:
            made.append(peer(port, u, secrets[u], **tls))
            assert made[-1].ok, f"{u}: {made[-1].connack}"
        yield made
    finally:
        for p in made:
            p.stop()


@pytest.fixture
def plain(home, tmp_path) -> Iterator[tuple[int, dict[str, str]]]:
    """A running broker from the plain configuration: (its port, every password)."""
    port = free_port()
    out = tmp_path / "broker"
    configure(home, out, "--bind", "127.0.0.1", "--port", str(port))
    with running(out, [port]):
        yield port, secrets_of(home)


def test_node_cannot_publish_under_another_nodes_tree(plain):
    port, pw = plain
    with peers(port, pw, "controller", "gw-001") as (ctl, a):
        ctl.subscribe("lanterna/#")
        for leaf in ("status", "state", "tele", "event", "ack", "ota/req"):
            a.publish(topic("gw-002", leaf), b"forged")  # another node, same site
        a.publish(topic("gw-001", "tele", site="porta-romana"), b"own id, other site")
        a.publish(topic("gw-002", "cmd"), b"a command to B")  # a node never writes cmd
        a.publish(topic("gw-001", "cmd"), b"a command to itself")
        a.publish(topic("gw-001", "tele"), b"marker")
        assert ctl.first(topic("gw-001", "tele")).payload == b"marker"
        assert ctl.topics() == [topic("gw-001", "tele")]


def test_node_publishes_every_leaf_of_its_own_tree(plain):
    port, pw = plain
    with peers(port, pw, "controller", "pr-001") as (ctl, c):
        ctl.subscribe("lanterna/#")
        leaves = ("status", "state", "tele", "event", "ack", "ota/req")
        for leaf in leaves:
            c.publish(topic("pr-001", leaf), leaf)
        ctl.first(topic("pr-001", "ota/req"))
        assert ctl.topics() == [topic("pr-001", leaf) for leaf in leaves]


def test_node_cannot_read_another_nodes_commands(plain):
    port, pw = plain
    with peers(port, pw, "controller", "gw-001", "gw-002") as (ctl, a, b):
        b.publish(topic("gw-002", "status"), b"online", retain=True)
        assert b.subscribe(topic("gw-002", "cmd"), topic("gw-002", "ota/data")) == [1, 1]
        a.subscribe(topic("gw-002", "cmd"), topic("gw-002", "ota/data"), "lanterna/#")
        assert a.subscribe(topic("gw-001", "cmd")) == [1]
        # the largest payloads the fleet sends must pass the broker's size limit
        big_cmd, chunk = b"{" + b" " * 8190 + b"}", bytes(4) + os.urandom(4096)
        ctl.publish(topic("gw-002", "cmd"), big_cmd)
        ctl.publish(topic("gw-002", "ota/data"), chunk)
        ctl.publish(topic("gw-001", "cmd"), b"marker")
        assert a.first(topic("gw-001", "cmd")).payload == b"marker"
        assert b.first(topic("gw-002", "cmd")).payload == big_cmd
        assert b.first(topic("gw-002", "ota/data")).payload == chunk
        assert a.topics() == [topic("gw-001", "cmd")]  # not B's, not B's retained status


def test_anonymous_and_wrong_passwords_are_refused(plain):
    port, pw = plain
    for user, password in [
        (None, None),
        ("gw-001", "wrong"),
        ("gw-001", pw["gw-002"]),  # another node's password
        ("controller", pw["gw-001"]),
        ("nobody", pw["gw-001"]),
    ]:
        p = peer(port, user, password)
        try:
            assert not p.ok and str(p.connack) == "Not authorized", (user, p.connack)
        finally:
            p.stop()


@pytest.fixture
def tls(home, tmp_path) -> Iterator[tuple[int, Path, dict[str, str]]]:
    """A running TLS-only broker: (its TLS port, the CA file, every password)."""
    port = free_port()
    out = tmp_path / "broker"
    configure(home, out, "--tls", "--bind", "127.0.0.1", "--tls-port", str(port))
    assert "\nlistener " not in (out / bc.CONF).read_text().split(f"listener {port}")[1]
    with running(out, [port]):
        yield port, out / bc.CA_CERT, secrets_of(home)


def test_plain_connection_to_the_tls_listener_fails(tls):
    port, _, pw = tls
    p = peer(port, "gw-001", pw["gw-001"])
    try:
        assert p.lost and p.connack is None
    finally:
        p.stop()


def test_verified_tls_connection_works(tls):
    port, ca, pw = tls
    with peers(port, pw, "controller", "gw-001", ca_certs=str(ca)) as (ctl, a):
        ctl.subscribe("lanterna/#")
        a.publish(topic("gw-001", "state"), b"{}")
        assert ctl.first(topic("gw-001", "state")).payload == b"{}"


def test_client_that_does_not_trust_the_ca_fails(tls, tmp_path):
    port, _, pw = tls
    other = tmp_path / "other-ca"
    other.mkdir()
    bc.ensure_ca(other, rotate=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        peer(port, "gw-001", pw["gw-001"], ca_certs=str(other / bc.CA_CERT))


def test_rerun_keeps_secrets_and_ca_and_prints_none(home, tmp_path):
    out = tmp_path / "broker"
    first, text1 = configure(home, out, "--tls", "--json")
    pw, ca, passwd = secrets_of(home), (out / bc.CA_CERT).read_bytes(), (out / "passwd").read_text()
    second, _ = configure(home, out, "--tls", "--json")
    _, text2 = configure(home, out, "--tls")
    assert secrets_of(home) == pw and (out / bc.CA_CERT).read_bytes() == ca
    assert (out / "passwd").read_text() == passwd
    assert second["changed"] == [] and second["ca_sha256"] == first["ca_sha256"]
    assert sorted(first["nodes"]) == sorted(NODES) and first["controller_user"] == "controller"
    for name in ("passwd", "ca.key", "server.key"):
        assert (out / name).stat().st_mode & 0o777 == 0o600, name
    for name in ("credentials.json", "config.json"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
    printed = text1 + text2 + json.dumps(second)
    key_pem = (out / "ca.key").read_text() + (out / "server.key").read_text()
    for secret in list(pw.values()) + [passwd, key_pem]:
        assert secret not in printed
    assert "controller" in text2 and str(out / bc.CONF) in text2

    rotated, _ = configure(home, out, "--tls", "--rotate", "--json")
    new = secrets_of(home)
    assert all(new[k] != pw[k] for k in pw)
    assert rotated["ca_sha256"] != first["ca_sha256"]


def test_password_hashes_are_mosquittos_format():
    h = bc.hash_password("s3cret", salt=bytes(12))
    assert h.startswith("$7$101$AAAAAAAAAAAAAAAA$") and bc.check_password(h, "s3cret")
    assert not bc.check_password(h, "s3cre") and not bc.check_password("plain", "plain")
    # what mosquitto_passwd writes for the same password verifies here too
    f = Path(os.environ.get("TMPDIR", "/tmp")) / f"pw-{os.getpid()}"
    f.touch(mode=0o600)
    try:
        subprocess.run(["mosquitto_passwd", "-b", str(f), "u", "s3cret"], check=True)
        assert bc.check_password(f.read_text().strip().split(":", 1)[1], "s3cret")
    finally:
        f.unlink()


def test_plain_too_adds_only_a_loopback_listener(tmp_path):
    o = bc.Options(out=tmp_path, tls=True, plain_too=True, port=1884, tls_port=8884)
    conf = bc.conf_text(o, tmp_path)
    assert "listener 8884\n" in conf and "listener 1884 127.0.0.1\n" in conf
    assert "listener 1883" not in bc.conf_text(bc.Options(out=tmp_path, tls=True), tmp_path)


@pytest.mark.parametrize("bad", ["controller", "lamp#1", "lamp+x"])
def test_unsafe_or_clashing_node_names_are_refused(home, tmp_path, bad):
    with Store(home / "lanterna.db") as s:
        s.put_node(bad, "greenwich", "sim-s3", bytes(32))
    r = CliRunner().invoke(
        cli, ["--db", str(home / "lanterna.db"), "broker", "config", "--out", str(tmp_path / "b")]
    )
    assert r.exit_code == 4 and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "b" / "acl").exists()


def test_new_host_names_reissue_the_server_certificate_under_the_same_ca(home, tmp_path):
    out = tmp_path / "broker"
    first, _ = configure(home, out, "--tls", "--json")
    cert = (out / bc.SERVER_CERT).read_bytes()
    again, _ = configure(home, out, "--tls", "--host", "mqtt.example.org", "--json")
    assert again["ca_sha256"] == first["ca_sha256"]
    assert set(again["changed"]) == {bc.SERVER_CERT, bc.SERVER_KEY}
    assert (out / bc.SERVER_CERT).read_bytes() != cert


@pytest.mark.parametrize(
    "args",
    [
        ["--bind", "0.0.0.0\nallow_anonymous true"],
        ["--run-as", "root\nallow_anonymous true"],
        ["--tls", "--host", "bad host"],
    ],
)
def test_values_that_would_inject_config_lines_are_refused(home, tmp_path, args):
    r = CliRunner().invoke(
        cli,
        ["--db", str(home / "lanterna.db"), "broker", "config", "--out", str(tmp_path / "b")]
        + args,
    )
    assert r.exit_code == 4 and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "b" / bc.CONF).exists()

"""`lanterna broker config --platform NAME`: a read-only account for the city's data
platform, on a real mosquitto started with what the command generates. The platform reads
every node's status, state, tele and event; it reads no command, ack or OTA message and
publishes nothing; its password is made once, kept, rotated on request and never printed.

What mosquitto 2.0.11 does with the ACL file (checked here, asserted below): a SUBSCRIBE
is granted whatever the ACL says (SUBACK QoS 1 even for `cmd`, `ack` or `#`) and the
`read` rule is applied to each message at delivery, so a refused read is a message that
never arrives. A refused PUBLISH is dropped in silence under MQTT 3.1.1 (PUBACK as usual)
and answered with PUBACK reason 0x87 "Not authorized" under MQTT 5. As in
tests/test_broker_config.py, each "nothing arrives" is bounded by a marker: an allowed
message sent after the refused ones on the same path, which mosquitto delivers in order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from test_broker_config import (  # noqa: F401 -- `home`: the fixture (a store of NODES)
    NODES,
    configure,
    home,
    peer,
    peers,
    running,
    secrets_of,
    topic,
)

from lanterna.broker import config as bc
from lanterna.broker.mosquitto import free_port
from lanterna.cli import cli

PLATFORM = "cityplatform"
READS = ("status", "state", "tele", "event")


def platform_passwords(h: Path) -> dict[str, str]:
    d = json.loads((h / "credentials.json").read_text())
    return {p: e["mqtt_password"] for p, e in d.get("platforms", {}).items()}


def broker_config(h: Path, out: Path, *args: str):
    return CliRunner().invoke(
        cli, ["--db", str(h / "lanterna.db"), "broker", "config", "--out", str(out), *args]
    )


@pytest.fixture
def city(home, tmp_path) -> Iterator[tuple[int, dict[str, str]]]:  # noqa: F811
    """A running broker with the platform account: (its port, every password)."""
    port = free_port()
    out = tmp_path / "broker"
    configure(home, out, "--bind", "127.0.0.1", "--port", str(port), "--platform", PLATFORM)
    with running(out, [port]):
        yield port, secrets_of(home) | platform_passwords(home)


def test_platform_reads_every_nodes_telemetry_feed(city):
    port, pw = city
    with peers(port, pw, PLATFORM, "gw-001", "pr-001") as (city_, a, c):
        a.publish(topic("gw-001", "status"), b"online", retain=True)
        assert city_.subscribe(*[f"lanterna/v1/+/+/{leaf}" for leaf in READS]) == [1] * 4
        assert city_.first(topic("gw-001", "status")).payload == b"online"  # retained
        for leaf in READS:
            c.publish(topic("pr-001", leaf), f"pr-001 {leaf}")
        a.publish(topic("gw-001", "tele"), b'{"v": 1}')
        assert city_.first(topic("gw-001", "tele")).payload == b'{"v": 1}'
        assert city_.topics() == [topic("gw-001", "status")] + [
            topic("pr-001", leaf) for leaf in READS
        ] + [topic("gw-001", "tele")]


def test_platform_receives_no_command_ack_or_ota_message(city):
    port, pw = city
    with peers(port, pw, PLATFORM, "controller", "gw-001") as (city_, ctl, a):
        # mosquitto 2.0 grants each of these (the read rule applies at delivery)
        asked = [topic("gw-001", leaf) for leaf in ("ack", "cmd", "ota/data", "ota/req")]
        assert city_.subscribe(*asked, "lanterna/#", "#") == [1] * 6
        ctl.subscribe("lanterna/#")
        ctl.publish(topic("gw-001", "cmd"), b"a command")
        ctl.publish(topic("gw-001", "ota/data"), bytes(8))
        ctl.publish(topic("gw-001", "ack"), b"an ack")
        a.publish(topic("gw-001", "ack"), b"the node's ack")
        a.publish(topic("gw-001", "ota/req"), b"a chunk request")
        a.publish(topic("gw-001", "tele"), b"marker")
        city_.first(topic("gw-001", "tele"), b"marker")
        # the marker only (through each of the three filters that match it) ...
        assert set(city_.topics()) == {topic("gw-001", "tele")}
        # ... while every one of the others went through the broker
        ctl.first(topic("gw-001", "tele"), b"marker")
        leaves = ("cmd", "ota/data", "ack", "ack", "ota/req", "tele")
        assert ctl.topics() == [topic("gw-001", leaf) for leaf in leaves]


def test_platform_publishes_nothing(city):
    port, pw = city
    with peers(port, pw, PLATFORM, "controller", "gw-001") as (city_, ctl, a):
        ctl.subscribe("lanterna/#")
        assert a.subscribe(topic("gw-001", "cmd")) == [1]
        # MQTT 3.1.1, as a platform's client may speak: PUBACKed and dropped
        city_.publish(topic("gw-001", "cmd"), b"a forged command")
        for leaf in READS:
            city_.publish(topic("gw-001", leaf), b"forged", retain=leaf == "status")
        city_.publish("elsewhere/topic", b"anywhere else")
        a.publish(topic("gw-001", "tele"), b"marker")
        ctl.first(topic("gw-001", "tele"), b"marker")
        assert ctl.topics() == [topic("gw-001", "tele")]
        ctl.publish(topic("gw-001", "cmd"), b"marker")
        assert a.first(topic("gw-001", "cmd")).payload == b"marker"
        assert a.topics() == [topic("gw-001", "cmd")]


def test_platform_publish_is_refused_with_not_authorized_under_mqtt5(city):
    port, pw = city
    acked: list[mqtt.ReasonCode] = []
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(PLATFORM, pw[PLATFORM])
    c.on_publish = lambda _c, _u, _mid, reason, _p: (acked.append(reason), done.set())
    with peers(port, pw, "controller") as (ctl,):
        ctl.subscribe("lanterna/#")
        c.connect("127.0.0.1", port)
        c.loop_start()
        try:
            c.publish(topic("gw-001", "cmd"), b"a forged command", qos=1)
            assert done.wait(10), "no PUBACK"
        finally:
            c.disconnect()
            c.loop_stop()
        assert acked[0].value == 0x87 and str(acked[0]) == "Not authorized"
        ctl.publish(topic("gw-001", "tele"), b"marker")
        ctl.first(topic("gw-001", "tele"), b"marker")
        assert ctl.topics() == [topic("gw-001", "tele")]


def test_platform_with_a_wrong_password_is_refused(city):
    port, pw = city
    for password in ("wrong", pw["gw-001"], pw["controller"]):
        p = peer(port, PLATFORM, password)
        try:
            assert not p.ok and str(p.connack) == "Not authorized", p.connack
        finally:
            p.stop()


def test_platform_password_is_kept_rotated_removed_and_never_printed(home, tmp_path):  # noqa: F811
    out = tmp_path / "broker"
    first = broker_config(home, out, "--platform", PLATFORM)
    assert first.exit_code == 0, first.output
    pw = platform_passwords(home)[PLATFORM]
    again = broker_config(home, out, "--platform", PLATFORM, "--json")
    assert again.exit_code == 0, again.output
    assert platform_passwords(home) == {PLATFORM: pw}
    j = json.loads(again.stdout)
    assert j["changed"] == [] and j["removed_platforms"] == []
    assert j["platforms"] == [
        {
            "name": PLATFORM,
            "credentials": str(home / "credentials.json"),
            "key": f"platforms.{PLATFORM}.mqtt_password",
            "reads": [f"lanterna/v1/+/+/{leaf}" for leaf in READS],
        }
    ]
    assert (home / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert f"{PLATFORM}:" in (out / bc.PASSWD).read_text()
    where = f"password platforms.{PLATFORM}.mqtt_password in {home / 'credentials.json'} (0600)"
    assert where in first.stdout

    rotated = broker_config(
        home, out, "--platform", PLATFORM, "--platform", "open-data", "--rotate"
    )
    assert rotated.exit_code == 0, rotated.output
    new = platform_passwords(home)
    assert set(new) == {PLATFORM, "open-data"} and new[PLATFORM] != pw
    for r in (first, again, rotated):
        assert pw not in r.output and new[PLATFORM] not in r.output
        assert new["open-data"] not in r.output

    # the config holds exactly this run's platforms: one left out loses its account
    dropped = broker_config(home, out, "--platform", "open-data")
    assert dropped.exit_code == 0, dropped.output
    assert f"platform account {PLATFORM} removed" in dropped.stderr
    assert platform_passwords(home) == {"open-data": new["open-data"]}
    assert f"\n{PLATFORM}:" not in "\n" + (out / bc.PASSWD).read_text()
    assert f"user {PLATFORM}\n" not in (out / bc.ACL).read_text()
    assert broker_config(home, out).exit_code == 0
    assert platform_passwords(home) == {}
    assert set(json.loads((home / "credentials.json").read_text())["nodes"]) == set(NODES)


@pytest.mark.parametrize(
    "bad, why",
    [
        ("gw-001", "a node of the store"),
        ("controller", "the controller account"),
        ("city platform", "cannot be a broker account"),
        ("city\nplatform", "cannot be a broker account"),
        ("lanterna/#", "cannot be a broker account"),
    ],
)
def test_clashing_or_unusable_platform_name_is_refused(home, tmp_path, bad, why):  # noqa: F811
    out = tmp_path / "broker"
    r = broker_config(home, out, "--platform", "ok-platform", "--platform", bad)
    assert r.exit_code == 4 and len(r.output.strip().splitlines()) == 1, r.output
    assert why in r.output
    assert not out.exists()
    # nothing made: no directory, no password for anyone
    assert not (home / "credentials.json").exists() and not (home / "config.json").exists()

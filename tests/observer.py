"""The one controller-side MQTT client of the tests and benches: a paho client on a test
broker that keeps every message it receives, in order, and lets a test wait for what it
expects (with a timeout) instead of sleeping.

By default it logs in as the controller and subscribes to `lanterna/#` at QoS 1 on every
connect (paho reconnects by itself after a broker restart), and the constructor returns
once the broker has acknowledged that subscription. The options cover the other peers a
test needs: another account or none (`user=None`), another listener (`port=`), TLS
(`tls=`: paho's `tls_set` arguments), a persistent session (`clean=False` with a
`client_id`: the broker keeps the subscription and queues QoS 1 messages while the
observer is away), MQTT 5 (`protocol=`), and a peer that may be refused
(`must_connect=False`: `ok`, `connack` and `lost` say what happened).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt


class _Fields(NamedTuple):
    topic: str
    payload: bytes
    retain: bool


class Msg(_Fields):
    """One message as delivered. It unpacks as (topic, payload, retain); `qos` is the
    QoS it arrived at, an attribute so that messages compare by what they say."""

    qos: int

    def __new__(cls, topic: str, payload: bytes, retain: bool, qos: int = 0) -> Msg:
        m = super().__new__(cls, topic, payload, retain)
        m.qos = qos
        return m


Pred = Callable[[list[Msg]], Any]


class Observer:
    def __init__(
        self,
        broker: Any = None,
        topics: Sequence[str] = ("lanterna/#",),
        *,
        port: int | None = None,
        user: str | None = "controller",
        password: str | None = None,
        client_id: str = "",
        clean: bool = True,
        protocol: int = mqtt.MQTTv311,
        tls: dict[str, Any] | None = None,
        must_connect: bool = True,
        timeout: float = 30.0,
    ) -> None:
        """`broker`: anything with `port` and `users` (a lanterna.broker.mosquitto
        Mosquitto); `port` and `password` override what it says. Raises what paho's
        connect raises (ssl.SSLCertVerificationError for an untrusted broker) and, with
        `must_connect`, AssertionError unless connected and subscribed within `timeout`."""
        if port is None:
            port = broker.port
        if password is None and user is not None and broker is not None:
            password = broker.users[user]
        self.subscriptions = list(topics)
        self.msgs: list[Msg] = []
        self.cond = threading.Condition()
        self.connack: mqtt.ReasonCode | None = None  # the last CONNACK's reason
        self.lost = False  # the connection was closed (or never opened) by the broker
        self.granted: list[int] = []  # the QoS (or failure code) of the last SUBACK
        self._ready = threading.Event()  # subscribed, refused or lost
        self._subacked = threading.Event()
        if protocol == mqtt.MQTTv5:
            self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id, protocol=protocol)
        else:
            self.c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id, clean_session=clean, protocol=protocol
            )
        if user is not None:
            self.c.username_pw_set(user, password)
        if tls is not None:
            self.c.tls_set(**tls)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.1, 0.5)
        if protocol == mqtt.MQTTv5:
            # MQTT 5 splits clean session in two: clean start, and a session that
            # outlives the connection only with a Session Expiry Interval (3.1.2.11.2)
            props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if clean else 3600
            self.c.connect("127.0.0.1", port, clean_start=clean, properties=props)
        else:
            self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        failed = None
        if not self._ready.wait(timeout):
            failed = f"no CONNACK and no disconnect in {timeout} s"
        elif must_connect and not (self.ok and (self.granted or not self.subscriptions)):
            failed = f"not connected and subscribed: {self.connack}, lost={self.lost}"
        if failed:
            self.stop()  # no client left retrying behind the test's back
            raise AssertionError(failed)

    @property
    def ok(self) -> bool:
        """Connected: the broker accepted the last CONNECT."""
        return self.connack is not None and not self.connack.is_failure

    def _on_connect(self, c, _u, _flags, reason, _props) -> None:
        self.connack = reason
        if reason.is_failure or not self.subscriptions:
            self._ready.set()
        else:
            # (re)subscribe on every connect: a clean session forgets subscriptions
            c.subscribe([(t, 1) for t in self.subscriptions])

    def _on_disconnect(self, *_a) -> None:
        self.lost = True
        self._ready.set()

    def _on_subscribe(self, _c, _u, _mid, codes, _props) -> None:
        self.granted = [c.value for c in codes]
        self._subacked.set()
        self._ready.set()

    def _on_message(self, _c, _u, m) -> None:
        with self.cond:
            self.msgs.append(Msg(m.topic, m.payload, bool(m.retain), m.qos))
            self.cond.notify_all()

    def subscribe(self, *topics: str, timeout: float = 10.0) -> list[int]:
        """Subscribe (QoS 1) and return what the SUBACK granted, one code per topic;
        the topics are subscribed again on every reconnect."""
        self._subacked.clear()
        self.subscriptions += topics
        self.c.subscribe([(t, 1) for t in topics])
        assert self._subacked.wait(timeout), "no SUBACK"
        return self.granted

    # -- waiting ---------------------------------------------------------------------

    def until(self, pred: Pred, timeout: float = 30.0) -> bool:
        """Whether pred(msgs) came to hold within `timeout`."""
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.msgs), timeout)

    def wait(self, pred: Pred, timeout: float = 30.0, what: str = "") -> list[Msg]:
        """Until pred(msgs) holds -> a copy of msgs; AssertionError naming `what` and the
        last messages."""
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.msgs), timeout):
                seen = [(t, p[:80]) for t, p, _ in self.msgs[-20:]]
                raise AssertionError(f"not seen in {timeout} s: {what}; last: {seen}")
            return list(self.msgs)

    def first(
        self, topic: str, payload: bytes | None = None, since: int = 0, timeout: float = 30.0
    ) -> Msg:
        """The first message on `topic` (with this payload, if given) from index `since`."""

        def match(m: Msg) -> bool:
            return m.topic == topic and (payload is None or m.payload == payload)

        what = f"{topic} {payload!r}" if payload is not None else topic
        msgs = self.wait(lambda ms: any(match(m) for m in ms[since:]), timeout, what)
        return next(m for m in msgs[since:] if match(m))

    # -- reading ---------------------------------------------------------------------

    def mark(self) -> int:
        """The index the next message will have: `since=` for what comes after now."""
        with self.cond:
            return len(self.msgs)

    def topics(self) -> list[str]:
        """The topic of every message received, in order."""
        with self.cond:
            return [m.topic for m in self.msgs]

    def json(self, topic: str, since: int = 0) -> list[dict]:
        """Every JSON payload received on `topic` (from index `since`), oldest first."""
        with self.cond:
            out = []
            for t, p, _ in self.msgs[since:]:
                if t == topic:
                    try:
                        out.append(json.loads(p))
                    except ValueError:
                        pass
            return out

    # -- sending ---------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until paho has handed it over (PUBACK for QoS 1)."""
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def command(self, topic: str, key: bytes, node: str, cmd: str, args: dict, ctr: int) -> dict:
        """A command signed as the controller signs it (lanterna.wire.protocol: the
        node's key, counter `ctr`), published to `topic` at QoS 1 -> its envelope (its
        "id" is what the node's ack carries)."""
        from lanterna.wire import protocol

        env = protocol.sign(key, node, cmd, args, ctr)
        self.publish(topic, protocol.encode(env))
        return env

    def ack(self, topic: str, cmd_id: str, since: int = 0, timeout: float = 30.0) -> dict:
        """The first ack on `topic` for the command `cmd_id`."""

        def acks(msgs: list[Msg]) -> list[dict]:
            out = []
            for m in msgs[since:]:
                if m.topic == topic and cmd_id.encode() in m.payload:
                    try:
                        a = json.loads(m.payload)
                    except ValueError:
                        continue
                    if a.get("id") == cmd_id:
                        out.append(a)
            return out

        return acks(self.wait(acks, timeout, f"ack {cmd_id}"))[0]

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

"""The controller's eye in end-to-end tests: a paho client on the test broker, logged in
as the controller, that keeps every message it receives and lets a test wait for what it
expects (with a timeout) instead of sleeping."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt


class Observer:
    def __init__(self, broker, topics: Sequence[str] = ("lanterna/#",)) -> None:
        self.msgs: list[tuple[str, bytes, bool]] = []  # (topic, payload, retain)
        self.cond = threading.Condition()
        subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.username_pw_set("controller", broker.users["controller"])
        self.c.on_message = self._on
        # (re)subscribe on every connect: paho reconnects by itself after a broker restart
        self.c.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.c.on_subscribe = lambda *_: subscribed.set()
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        if not subscribed.wait(30):
            raise AssertionError("the observer did not subscribe")

    def _on(self, _c, _u, m) -> None:
        with self.cond:
            self.msgs.append((m.topic, m.payload, m.retain))
            self.cond.notify_all()

    def wait(
        self,
        pred: Callable[[list[tuple[str, bytes, bool]]], Any],
        timeout: float = 30.0,
        what: str = "",
    ) -> list[tuple[str, bytes, bool]]:
        """Until pred(msgs) holds; AssertionError naming `what` and the last messages."""
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.msgs), timeout):
                seen = [(t, p[:80]) for t, p, _ in self.msgs[-20:]]
                raise AssertionError(f"not seen in {timeout} s: {what}; last: {seen}")
            return list(self.msgs)

    def json(self, topic: str) -> list[dict]:
        """Every JSON payload received on `topic`, oldest first."""
        with self.cond:
            out = []
            for t, p, _ in self.msgs:
                if t == topic:
                    try:
                        out.append(json.loads(p))
                    except ValueError:
                        pass
            return out

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()

"""One command to many nodes over MQTT, without a per-node wait (lanterna.fleet.commander).

Measured before (issue 15): 10,000 nodes took 11 s, about 900 acks/s, with paho's
default of 20 messages in flight; at 70,000 nodes 885 commands never reached the broker,
because `publish()` returns MQTT_ERR_QUEUE_SIZE once 65,535 are outstanding (paho's
message ids) and its return code was not looked at. Here:

- Publishes go through a window: at most `window` handed to paho and not yet PUBACKed
  by the broker, `inflight` of them on the wire. A publish paho refuses anyway
  (ERR_QUEUE_SIZE) stays at the head of the queue and is tried again once PUBACKs have
  freed room; nothing is dropped.
- Acks: one subscription to ``{prefix}/+/+/ack``; a dict of pending envelope ids. The
  network thread only queues what arrives; this thread settles, writes the store
  (SQLite connections belong to their thread) and calls `progress`.
- Timeouts count from the publish that the broker took (its PUBACK), so a node at the
  end of a 250,000-node queue is not timed out for the queue's length. Those without an
  answer get the same envelope again (commander's docstring says why), `retries` times.
- Nothing is lost silently: a command paho never took, or the broker never PUBACKed,
  ends ``unsent``; one the broker took and the node never answered, ``timeout``; each
  reported per node and stored with that status.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanterna.context import Broker
from lanterna.fleet.outcome import Outcome, SendError, ack_json
from lanterna.store.db import Node
from lanterna.wire import protocol
from lanterna.wire import topics as T

# When nothing was handed to paho, PUBACKed or answered for this long, and no node's
# answer is awaited, what is left is reported unsent (a broker that takes nothing).
STALL_S = 30.0
# nodes signed at a time (counters reserved and commands recorded in one transaction)
CHUNK = 1000
# a refused publish is tried again after this, or at the next PUBACK
REFUSED_WAIT = 0.05


@dataclass
class _Cmd:
    node: Node
    env: dict[str, Any]
    topic: str
    payload: bytes
    attempt: int = 0  # publishes of this envelope so far
    acked_by_broker: bool = False
    deadline: float | None = None  # for the node's answer, from the broker's PUBACK
    done: bool = False
    extra: int = 0  # a fresh envelope after a replay: at most one
    sent_at: list[float] = field(default_factory=list)


def _payload(env: dict[str, Any]) -> bytes:
    # protocol.encode(env) without checking the envelope a third time: sign() has checked
    # it twice already (its MAC and its size), and the check walks every string of the
    # arguments (most of the signing time for a schedule). The bytes are the canonical
    # form's (protocol.canonical); tests/test_commander_scale.py holds the two alike.
    return json.dumps(env, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class Fanout:
    def __init__(
        self,
        commander: Any,
        broker: Broker,
        nodes: Sequence[Node],
        cmd: str,
        args: dict[str, Any],
        timeout: float,
        retries: int,
        progress: Callable[[Any], None] | None,
    ) -> None:
        self.cm = commander
        self.store = commander.store
        self.prefix = commander.prefix
        self.broker = broker
        self.nodes = list(nodes)
        self.cmd, self.args = cmd, args
        self.timeout, self.retries = timeout, retries
        self.progress = progress
        self.outcomes = {n.id: Outcome(n.id) for n in self.nodes}
        self.pending: dict[str, _Cmd] = {}  # envelope id -> its command, until settled
        self.queue: collections.deque[_Cmd] = collections.deque()  # to publish
        self.timers: collections.deque[tuple[float, str, int]] = collections.deque()
        self.by_mid: dict[int, str] = {}  # paho message id -> envelope id, until PUBACK
        # filled by the network thread, drained here (deque appends are atomic)
        self.acks: collections.deque[bytes] = collections.deque()
        self.pubacks: collections.deque[int] = collections.deque()
        self.wake = threading.Event()
        self.t0 = time.monotonic()
        self.stats: dict[str, Any] = {"published": 0, "refused": 0, "resent": 0}

    # -- the network thread: queue and wake, nothing else ---------------------------------

    def _on_message(self, _c, _u, m) -> None:
        self.acks.append(m.payload)
        self.wake.set()

    def _on_publish(self, _c, _u, mid, _rc, _p) -> None:
        self.pubacks.append(mid)
        self.wake.set()

    # -- this thread ----------------------------------------------------------------------

    def _envelopes(self, nodes: Sequence[Node]) -> list[_Cmd]:
        out = []
        for i, (n, env) in self.cm._envelopes(nodes, self.cmd, self.args, "mqtt").items():
            topic = T.node_topic(self.prefix, n.site, n.id, T.CMD)
            c = _Cmd(n, env, topic, _payload(env))
            self.pending[i] = c
            self.outcomes[n.id].command = i
            out.append(c)
        return out

    def run(
        self, inflight: int, window: int, client_queue: int, stall_s: float | None = None
    ) -> list[Any]:
        from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_QUEUE_SIZE, MQTT_ERR_SUCCESS

        subscribed = threading.Event()
        failure: list[str] = []

        def on_connect(c, _u, _f, rc, _p) -> None:
            if rc.is_failure:
                failure.append(str(rc))
                subscribed.set()
                return
            # QoS 0 from the broker to us: no PUBACK per ack for paho's thread to send (it
            # shares the GIL with the signing and settling). An ack lost on this one hop
            # (our connection dropping) costs a retry, whose answer settles the node all
            # the same: the replay of its own envelope means applied.
            c.subscribe(T.fleet_filter(self.prefix, T.ACK), qos=0)

        c = self.broker.client("lanterna-cli-" + uuid.uuid4().hex[:8])
        c.max_inflight_messages_set(inflight)
        c.max_queued_messages_set(client_queue)
        c.on_connect = on_connect
        c.on_subscribe = lambda *_a: subscribed.set()
        c.on_message, c.on_publish = self._on_message, self._on_publish
        try:
            c.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as e:
            raise SendError(f"broker {self.broker.url}: {e.strerror or e}") from None
        c.loop_start()
        try:
            if not subscribed.wait(10) or failure:
                why = f"refused ({failure[0]})" if failure else "no answer"
                raise SendError(f"broker {self.broker.url}: {why}")
            self.t0 = time.monotonic()
            unsigned = collections.deque(self.nodes)
            moved = time.monotonic()  # the last time anything was taken or PUBACKed
            while self.pending or unsigned:
                now = time.monotonic()
                refused = False
                if unsigned and len(self.queue) < CHUNK:
                    # signed (counters reserved, rows recorded) a chunk at a time, so
                    # the first commands are on their way while the rest are signed
                    batch = [unsigned.popleft() for _ in range(min(CHUNK, len(unsigned)))]
                    self.queue.extend(self._envelopes(batch))
                    if not unsigned:
                        self.stats["signed_s"] = round(time.monotonic() - self.t0, 3)
                # publish while the window has room; a refusal stays at the head
                while self.queue and len(self.by_mid) < window:
                    cmd = self.queue[0]
                    info = c.publish(cmd.topic, cmd.payload, qos=1)
                    if info.rc == MQTT_ERR_QUEUE_SIZE:
                        self.stats["refused"] += 1
                        refused = True
                        break
                    if info.rc not in (MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN):
                        # NO_CONN: paho keeps it and sends it after its reconnect
                        self.stats["refused"] += 1
                        refused = True
                        break
                    self.queue.popleft()
                    cmd.attempt += 1
                    cmd.acked_by_broker = False
                    cmd.sent_at.append(now)
                    self.outcomes[cmd.node.id].attempts += 1
                    self.by_mid[info.mid] = cmd.env["id"]
                    self.stats["published"] += 1
                    moved = now
                if not self.queue and "queue_empty_s" not in self.stats:
                    self.stats["queue_empty_s"] = round(time.monotonic() - self.t0, 3)
                if self._drain():
                    moved = time.monotonic()
                self._expire(time.monotonic())
                if time.monotonic() - moved > (stall_s or STALL_S) and not self.timers:
                    # the broker takes nothing: what is left is unsent, every one of
                    # them recorded
                    if unsigned:
                        self._envelopes(list(unsigned))
                        unsigned.clear()
                    break
                if not self.pending and not unsigned:
                    break
                if unsigned and len(self.queue) < CHUNK:
                    continue  # sign the next chunk at once
                wait = REFUSED_WAIT if refused else self._next_wait()
                self.wake.wait(wait)
                self.wake.clear()
        finally:
            c.disconnect()
            c.loop_stop()
        self._finish_unsettled()
        return [self.outcomes[n.id] for n in self.nodes]

    def _next_wait(self) -> float:
        if not self.timers:
            return 0.5
        return min(0.5, max(0.0, self.timers[0][0] - time.monotonic()))

    def _drain(self) -> bool:
        """PUBACKs start the answer timers; acks settle. True when anything came."""
        took = bool(self.pubacks or self.acks)
        while self.pubacks:
            i = self.by_mid.pop(self.pubacks.popleft(), None)
            cmd = self.pending.get(i) if i else None
            if i is None or cmd is None or cmd.done:
                continue
            cmd.acked_by_broker = True
            cmd.deadline = time.monotonic() + self.timeout
            self.timers.append((cmd.deadline, i, cmd.attempt))
        while self.acks:
            raw = self.acks.popleft()
            try:
                ack = protocol.parse_ack(raw)
            except (protocol.AckError, ValueError):
                continue
            cmd = self.pending.get(ack.id) if ack.id else None
            if ack.id is None or cmd is None or cmd.done or ack.node != cmd.node.id:
                continue  # another controller's, a settled one's duplicate
            self._answer(ack.id, cmd, ack)
        return took

    def _answer(self, i: str, cmd: _Cmd, ack: protocol.Ack) -> None:
        o = self.outcomes[cmd.node.id]
        o.ms = int((time.monotonic() - self.t0) * 1000)
        if not ack.ok and ack.error == "replay" and ack.ctr is not None:
            if ack.ctr == cmd.env["ctr"]:
                # our own copy again: the node applied this very envelope at an earlier
                # delivery and its ack was lost (the counter is only ever ours)
                self._settle(i, cmd, "ok", ack_json(ack))
                o.status, o.result = "ok", None
                o.detail = "applied at an earlier delivery (its ack was lost)"
                self._tell(o)
                return
            if cmd.extra == 0:
                # the store is behind the node (a restored store): above it, once, fresh
                self.store.raise_ctr(cmd.node.id, ack.ctr)
                self._settle(i, cmd, "error", ack_json(ack))
                (fresh,) = self._envelopes([cmd.node])
                fresh.extra = 1
                self.queue.appendleft(fresh)
                self.stats["resent"] += 1
                return
        self._settle(i, cmd, "ok" if ack.ok else "error", ack_json(ack))
        if ack.ok:
            o.status, o.result = "ok", ack.result
        else:
            o.status, o.error, o.detail = "error", ack.error, ack.detail
            o.update_result = ack.update_result
        self._tell(o)

    def _settle(self, i: str, cmd: _Cmd, status: str, result: dict[str, Any] | None) -> None:
        cmd.done = True
        del self.pending[i]
        self.store.finish_command(i, status, result)

    def _tell(self, o: Any) -> None:
        if self.progress:
            self.progress(o)

    def _expire(self, now: float) -> None:
        """Nodes whose answer is overdue: the same envelope again, or timed out."""
        while self.timers and self.timers[0][0] <= now:
            _, i, attempt = self.timers.popleft()
            cmd = self.pending.get(i)
            if cmd is None or cmd.done or cmd.attempt != attempt:
                continue
            if cmd.attempt <= self.retries:
                self.queue.append(cmd)
                self.stats["resent"] += 1
                continue
            o = self.outcomes[cmd.node.id]
            o.status, o.detail = "timeout", f"no answer in {self.timeout:g} s"
            self._settle(i, cmd, "timeout", {"detail": o.detail, "attempts": cmd.attempt})
            self._tell(o)

    def _finish_unsettled(self) -> None:
        # what never reached the broker, or was still waiting when the broker stalled
        for i, cmd in list(self.pending.items()):
            o = self.outcomes[cmd.node.id]
            if cmd.acked_by_broker:
                o.status, o.detail = "timeout", f"no answer in {self.timeout:g} s"
                status = "timeout"
            else:
                o.status = "unsent"
                o.detail = (
                    "never sent: the client's queue stayed full, the broker took nothing"
                    if cmd.attempt == 0
                    else "the broker never acknowledged it"
                )
                status = "unsent"
            self._settle(i, cmd, status, {"detail": o.detail, "attempts": cmd.attempt})
            self._tell(o)

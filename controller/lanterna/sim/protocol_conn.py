"""One MQTT connection of the protocol-level fleet, carrying many simulated nodes.

The session is the node's (lamp.net.mqtt) rebuilt on CPython's asyncio, and its bytes
are the node's own codec (lamp.net.mqtt_packet: CONNECT, PUBLISH head, SUBSCRIBE,
PUBACK, the incremental parser): MQTT 3.1.1, Clean Session, QoS 1 out with DUP on
retry, one SUBSCRIBE per topic (the node's parser takes a one-topic SUBACK), keepalive
as the node keeps it, reconnect with the node's backoff (full jitter, 1 s doubling to
60 s, reset only by a link that held 30 s; the figures are read from the firmware's
source, so they cannot drift). What differs, because one connection carries many nodes:

- every node keeps its own bounded outbox (the node's outbox_count / outbox_bytes,
  oldest dropped first and counted in its mqtt_dropped), and the connection writes the
  nodes' messages in the order they were queued, at most `window` in flight;
- the Will: with one node per connection it is the node's own (its status topic,
  ``offline``, retained); with several it can only cover the connection, so it is
  ``{prefix}/_sim/{client id}`` (retained JSON listing the nodes it carried), cleared
  when the connection is back; a clean stop publishes every node's ``offline`` itself
  (docs/simulation.md, "Status and the Will").
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

from lamp import numbers as N
from lamp.net import mqtt_packet as pk


def _firmware_timers() -> dict[str, int]:
    # lamp.net.mqtt does not import under CPython (asyncio.ticks, wait_for_ms): its
    # timers are read from its source, `_NAME = const(N)` at module level, and
    # MQTTClient's backoff_max_s default.
    import lamp.net

    src = Path(lamp.net.__file__).with_name("mqtt.py").read_text()
    out: dict[str, int] = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if getattr(call.func, "id", None) == "const" and isinstance(node.targets[0], ast.Name):
                out[node.targets[0].id] = ast.literal_eval(call.args[0])
        if isinstance(node, ast.ClassDef) and node.name == "MQTTClient":
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name == "__init__":
                    names = [a.arg for a in f.args.args][-len(f.args.defaults) :]
                    for name, d in zip(names, f.args.defaults, strict=True):
                        if name == "backoff_max_s":
                            out["backoff_max_s"] = ast.literal_eval(d)
    return out


T = _firmware_timers()
CONNECT_S = T["_CONNECT_MS"] / 1000  # TCP and CONNACK
RETRY_S = T["_RETRY_MS"] / 1000  # a QoS 1 PUBLISH without PUBACK is sent again, DUP set
BACKOFF_S = T["_BACKOFF_MS"] / 1000  # first reconnect window
STABLE_S = T["_STABLE_MS"] / 1000  # a link that lasted this long resets the backoff
BACKOFF_MAX_S = float(T["backoff_max_s"])
MAX_PAYLOAD = 8192  # MQTTClient's max_payload: a longer incoming payload is skipped
_DUP = 0x08


def backoff(tries: int, cap_s: float = BACKOFF_MAX_S, spread_s: float = 0.0) -> float:
    """lamp.net.mqtt.MQTTClient._backoff: a random wait in [0, min(max, 1 s * 2^(n-1))].
    spread_s > 0 is a what-if, not the node's policy: no window below it (bench_storm
    measures what a wider first window would do to a reconnect storm)."""
    cap = min(cap_s * 1000, T["_BACKOFF_MS"] << min(tries - 1, 16))
    cap = max(cap, spread_s * 1000)
    r = os.urandom(3)
    return ((r[0] << 16 | r[1] << 8 | r[2]) % (int(cap) + 1)) / 1000


def _retrieve(t: asyncio.Future) -> None:
    # An ended task's exception is taken (what ended the link was handled by run()).
    if not t.cancelled():
        t.exception()


class Refused(OSError):
    pass


class Msg:
    __slots__ = ("node", "topic", "payload", "flags", "pid", "sent", "dead", "online")

    def __init__(self, node: Any, topic: bytes, payload: bytes, flags: int, online: bool) -> None:
        self.node = node
        self.topic = topic
        self.payload = payload
        self.flags = flags
        self.pid = 0
        self.sent: float | None = None
        self.dead = False  # dropped from its node's outbox
        self.online = online  # the node's status "online"


class Conn:
    def __init__(
        self,
        fleet: Any,
        index: int,
        nodes: list,
        host: str,
        port: int,
        user: str | None,
        password: str | None,
        client_id: str,
        prefix: str,
        keepalive: int = 60,
        outbox_count: int = 64,
        outbox_bytes: int = 8192,
        window: int = 1000,
        spread_s: float = 0.0,
    ) -> None:
        self.fleet = fleet
        self.index = index
        self.nodes = nodes
        self.host, self.port = host, port
        self.client_id = client_id
        self.keepalive = keepalive
        self.max_n, self.max_b = outbox_count, outbox_bytes
        self.window = window
        self.spread_s = spread_s
        for n in nodes:
            n.conn = self
        if len(nodes) == 1:
            n = nodes[0]
            will = (n.base + N.STATUS, N.OFFLINE, 1, True)  # the node's own (lamp.net.link)
            self.will_topic = None
        else:
            self.will_topic = f"{prefix.rstrip('/')}/_sim/{client_id}"
            body = json.dumps({"v": N.SCHEMA, "offline": [n.id for n in nodes]})
            will = (self.will_topic, body.encode(), 1, True)
        self.hello = bytes(pk.connect(client_id, keepalive, user, password, will))
        self.by_cmd = {n.base + N.CMD: n for n in nodes}
        self.queue: deque[Msg] = deque()  # not yet written on this link, oldest first
        self.inflight: dict[int, Msg] = {}  # written, awaiting PUBACK
        self.connected = False
        self.stopping = False
        self.wake = asyncio.Event()
        self._pid = 0
        self._rx = self._tx = time.monotonic()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._left = b""
        self.parser = pk.Parser(MAX_PAYLOAD + 260)
        self.attempts = self.connects = self.failures = self.refused = 0
        self.sent = self.acked = self.dropped = self.received = self.skipped = 0
        self.held = 0  # messages queued while the link was down
        self.up_at: float | None = None
        self.last_error: str | None = None

    # -- the nodes' side -----------------------------------------------------------------

    def publish(self, node: Any, topic: str, payload: Any, qos: int = 1, retain: bool = False):
        # lamp.net.mqtt.MQTTClient.publish for `node`: its outbox is bounded on its own.
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        if n > self.max_b:
            return False
        out = node.out
        if out is None:
            out = node.out = []
        while out and (len(out) >= self.max_n or node.out_bytes + n > self.max_b):
            m = out.pop(0)
            node.out_bytes -= len(m.payload)
            m.dead = True
            node.dropped += 1
            self.dropped += 1
        online = payload == N.ONLINE and topic.endswith("/" + N.STATUS)
        m = Msg(node, topic.encode(), payload, qos << 1 | (1 if retain else 0), online)
        out.append(m)
        node.out_bytes += n
        self.queue.append(m)
        self.fleet.count(topic)
        if not self.connected:
            self.held += 1  # kept for the link's return
        if self.connected:
            self.wake.set()
        return True

    def reboot(self, node: Any) -> None:
        # A `reboot` command's end (lamp.cmd.control._reboot, replaced): the broker would
        # publish the node's Will, then the node boots and connects again.
        self.publish(node, node.base + N.STATUS, N.OFFLINE, 1, True)
        self._down(node)
        node.boot("soft")
        if self.connected:
            node.on_connect()

    # -- the session ---------------------------------------------------------------------

    async def run(self) -> None:
        tries = 0
        while not self.stopping:
            try:
                self.attempts += 1
                self.fleet.attempt()
                await asyncio.wait_for(self._handshake(), CONNECT_S)
                await self._serve()
            except Exception as e:  # a broken link or broker must never end run() (the node's rule)
                if self.stopping:
                    break
                self.last_error = f"{type(e).__name__} {e}"
                if self.up_at is not None and time.monotonic() - self.up_at >= STABLE_S:
                    tries = 0
                tries += 1
                self.failures += 1
            finally:
                self._close()
            if self.stopping:
                break
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), backoff(tries, spread_s=self.spread_s))
            except TimeoutError:
                pass

    async def _handshake(self) -> None:
        self.up_at = None
        self.parser.reset()
        self._left = b""
        r, w = await asyncio.open_connection(self.host, self.port)
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader, self._writer = r, w
        w.write(self.hello)
        p = self.parser
        while not p.ready:
            data = await r.read(4096)
            if not data:
                raise OSError("closed by the broker")
            i = p.feed(data, 0, len(data))
            self._left = data[i:]
        if p.kind != 0x20:
            raise ValueError(f"packet type {p.kind >> 4} before CONNACK")
        rc = p.body[1]
        if rc:
            self.refused += 1
            why = pk.REFUSED[rc - 1] if rc <= 5 else "code"
            raise Refused(f"{why} (CONNACK {rc})")
        self.connected = True
        self.connects += 1
        self.up_at = self._rx = self._tx = time.monotonic()
        # Clean Session: every QoS 1 message not acknowledged goes again, DUP set (sec.
        # 4.4), in the order the nodes queued it.
        again = sorted(
            (m for m in self.inflight.values() if not m.dead), key=lambda m: m.sent or 0.0
        )
        for m in again:
            m.pid = 0  # the broker forgot them: new ids, none shared with a fresh message
        self.inflight.clear()
        self.queue.extendleft(reversed(again))

    async def _serve(self) -> None:
        w = self._writer
        assert w is not None
        for topic in self.by_cmd:
            w.write(bytes(pk.subscribe(self._next_pid(), topic, 1)))
        if self.will_topic is not None:
            self._queue_raw(self.will_topic.encode(), b"", 1)  # the connection is back
        for n in self.nodes:
            if not n.booted:
                n.boot()
            n.on_connect()
        reader = asyncio.ensure_future(self._read())
        writer = asyncio.ensure_future(self._write())
        try:
            done, _ = await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # raises what ended it
        finally:
            self._close()  # the writer also ends on its own once its link is gone
            for t in (reader, writer):
                t.cancel()
            # Python 3.11's wait_for can swallow a cancel that lands as its wait ends
            # (CPython gh-86296): the writer then ends at its next turn (its link is
            # closed); the reconnect does not wait for it.
            await asyncio.wait((reader, writer), timeout=0.1)
            for t in (reader, writer):
                t.add_done_callback(_retrieve)

    def _queue_raw(self, topic: bytes, payload: bytes, retain: int) -> None:
        # A message of the connection itself (its Will cleared), outside any node's outbox.
        m = Msg(None, topic, payload, 1 << 1 | retain, False)
        self.queue.appendleft(m)

    def _next_pid(self) -> int:
        while True:
            self._pid = self._pid % 65535 + 1  # 1..65535, never 0 (sec. 2.3.1)
            if self._pid not in self.inflight:
                return self._pid

    async def _write(self) -> None:
        w = self._writer
        assert w is not None
        head = bytearray(8)
        ka = self.keepalive
        while True:
            if self._writer is not w or w.is_closing():
                raise OSError("link closed")
            now = time.monotonic()
            if now - self._rx >= ka * 1.5:
                raise OSError(f"broker silent for {now - self._rx:.0f} s (keepalive {ka} s)")
            q = self.queue
            wrote = 0
            while q and len(self.inflight) < self.window:
                if w.is_closing():  # lost while writing: no more writes into it
                    raise OSError("link closed")
                m = q.popleft()
                if m.dead:
                    continue
                self._put(w, head, m, now)
                wrote += 1
                if wrote % 256 == 0:
                    await w.drain()
            for m in self.inflight.values():
                if m.sent is not None and now - m.sent >= RETRY_S and not m.dead:
                    self._put(w, head, m, now)
                    wrote += 1
            if not wrote and now - self._tx >= ka / 2:
                w.write(pk.PINGREQ)
                self._tx = now
            await w.drain()
            self.wake.clear()
            if self.queue and len(self.inflight) < self.window:
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except TimeoutError:
                pass

    def _put(self, w: asyncio.StreamWriter, head: bytearray, m: Msg, now: float) -> None:
        if not m.pid:
            m.pid = self._next_pid()
        n = pk.publish_head(head, m.flags, len(m.topic), len(m.payload))
        w.write(b"".join((head[:n], m.topic, m.pid.to_bytes(2, "big"), m.payload)))
        m.flags |= _DUP  # any later copy is a re-delivery (sec. 3.3.1.1)
        m.sent = now
        self.inflight[m.pid] = m
        self.sent += 1
        self._tx = now

    async def _read(self) -> None:
        r = self._reader
        assert r is not None
        p = self.parser
        data = self._left
        while True:
            i, n = 0, len(data)
            while i < n:
                i = p.feed(data, i, n)
                if p.ready:
                    self._packet(p)
            data = await r.read(65536)
            if not data:
                raise OSError("closed by the broker")
            self._rx = time.monotonic()

    def _packet(self, p: pk.Parser) -> None:
        t = p.kind >> 4
        b = p.body
        if t == 4:  # PUBACK
            m = self.inflight.pop(b[0] << 8 | b[1], None)
            if m is None:
                return
            self.acked += 1
            node = m.node
            if node is None or m.dead:
                return
            out = node.out
            if out is not None:
                try:
                    out.remove(m)
                except ValueError:
                    pass
                node.out_bytes -= len(m.payload)
                if not out:
                    node.out = None
            if m.online and not node.online:
                node.online = True
                self.fleet.online(node)
        elif t == 3:  # PUBLISH
            end, pid, off = p.publish()
            n = p.length
            if n > len(b) or n - off > MAX_PAYLOAD:
                self.skipped += 1  # acknowledged, never delivered (lamp.net.mqtt)
            else:
                self.received += 1
                topic = bytes(b[2:end]).decode()
                node = self.by_cmd.get(topic)
                if node is not None:
                    node.command(topic, bytes(b[off:n]))
                    self.fleet.commanded()
            w = self._writer
            if pid and w is not None and not w.is_closing():
                w.write(bytes(pk.puback(bytearray(4), pid)))
        elif t == 9:  # SUBACK
            if b[2] & 0x80:
                self.last_error = "a subscription was refused"
        elif t == 13:  # PINGRESP
            pass
        else:
            raise ValueError(f"unexpected packet type {t}")

    def _down(self, n: Any) -> None:
        if n.online:
            n.online = False
            self.fleet.offline(n)

    def _close(self) -> None:
        if self.connected:
            for n in self.nodes:  # offline until their online is acknowledged again
                self._down(n)
        self.connected = False
        w, self._writer = self._writer, None
        self._reader = None
        if w is not None:
            w.close()

    async def stop(self, timeout: float = 10.0) -> None:
        """Every node's status offline (retained, acknowledged), then DISCONNECT: a
        clean end, the Will discarded (sec. 3.14)."""
        for n in self.nodes:
            self.publish(n, n.base + N.STATUS, N.OFFLINE, 1, True)
            self._down(n)
        deadline = time.monotonic() + timeout
        while self.connected and time.monotonic() < deadline:
            if not self.queue and not self.inflight:
                break
            self.wake.set()
            await asyncio.sleep(0.02)  # the writer and reader run meanwhile
        self.stopping = True
        w = self._writer
        if w is not None and self.connected:
            try:
                w.write(pk.DISCONNECT)
                await asyncio.wait_for(w.drain(), 2)
            except (OSError, TimeoutError):
                pass
        self._close()
        self.wake.set()

    def unsent(self) -> int:
        return sum(1 for m in self.queue if not m.dead and m.node is not None) + sum(
            1 for m in self.inflight.values() if not m.dead and m.node is not None
        )

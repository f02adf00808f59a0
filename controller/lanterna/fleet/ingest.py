"""`lanterna serve`: what the nodes publish, into the store, without losing any of it.

- One MQTT session per worker that outlives it: a fixed client id per store and worker
  index (``lanterna-serve-<store hash>-w<k>``), clean session off, QoS 1 subscriptions to
  ``{prefix}/+/+/status|state|tele|event``. MQTT 3.1.1, not 5: paho spends about 25 us
  more per message on MQTT 5 (a properties object per PUBLISH; docs/scale.md), and
  mosquitto 2.0 takes shared subscriptions from 3.1.1 clients too, with the same
  behaviour for a dead member (measured alike on both). The session expires after the
  broker's persistent_client_expiration (14 days in the generated config).
  While serve is down or the broker restarts (mosquitto with persistence), the broker
  keeps the session and queues what arrives for it; paho reconnects on its own.
- Several workers (`shared`): the same filters as a shared subscription,
  ``$share/lanterna-<store hash>/...``; the broker hands each message to one worker of
  the store's group (round robin in mosquitto 2.0), so N workers, here or on several
  hosts, share the load. One worker alone keeps the plain subscription, because
  mosquitto 2.0.11 does not restore shared subscriptions from its persistence after a
  restart (measured: a plain persistent subscription got all 10 messages published
  between the broker's restart and the client's return, a shared one none; the worker
  subscribes again on reconnect, so only that gap is lost; docs/mqtt.md).
- A worker that dies keeps what it held: mosquitto 2.0.11 (measured) neither hands a
  disconnected member's unacknowledged messages to the other members nor stops routing
  new ones to its session while it is away; they all wait in that session and arrive,
  the unacknowledged ones again with DUP, when the same client id connects again. So
  worker ids are fixed and the supervisor (lanterna.fleet.workers) restarts a dead worker
  under its own id at once; the store's ingest is idempotent (telemetry is unique by node
  and ts), so what was committed but not yet acknowledged is not stored twice.
- Manual acknowledgement: a message is PUBACKed only after the transaction that holds it
  has committed. A crash between delivery and commit makes the broker deliver it again;
  nothing the broker handed over is lost.
- Batches with back-pressure: the network thread hands messages to a bounded queue; the
  writer commits what has queued, up to `batch` messages, in one transaction. When the store
  falls behind the queue fills, the network thread blocks, TCP pushes back, and the
  broker holds the rest.
- SIGTERM or SIGINT: stop taking messages, commit and acknowledge what is queued,
  disconnect (the session stays: what arrives meanwhile waits for the next start).
- What the broker dropped because a session's queue was full (serve away longer than the
  queue was sized for, lanterna.broker.config.queue_plan) is not lost silently: the
  broker's ``$SYS/broker/publish/messages/dropped`` count is read, logged when it rises
  and reported (``broker_dropped``, counted since the broker started, for all its
  clients; the nodes' sessions are clean, so a full queue is a serve session's).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lanterna.context import Broker
from lanterna.store.db import Store
from lanterna.wire import topics as T
from lanterna.wire.topics import PREFIX

LEAVES = ("status", "state", "tele", "event")
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"
# serve --drain ends once nothing has arrived for this long
DRAIN_IDLE_S = 3.0


def store_tag(store_path: str) -> str:
    # One tag per store: its workers' client ids and their share group.
    return hashlib.sha256(store_path.encode()).hexdigest()[:12]


def client_id(store_path: str, worker: int) -> str:
    return f"lanterna-serve-{store_tag(store_path)}-w{worker}"


def share_group(store_path: str) -> str:
    return f"lanterna-{store_tag(store_path)}"


@dataclass
class Stats:
    received: int = 0
    stored: int = 0
    skipped: int = 0  # not a payload its topic carries
    batches: int = 0
    connects: int = 0
    broker_dropped: int | None = None  # the broker's count, since it started
    started: float = field(default_factory=time.monotonic)

    def as_json(self) -> dict[str, Any]:
        dt = max(time.monotonic() - self.started, 1e-9)
        return {
            "received": self.received,
            "stored": self.stored,
            "skipped": self.skipped,
            "batches": self.batches,
            "connects": self.connects,
            "broker_dropped": self.broker_dropped,
            "seconds": round(dt, 1),
            "rate_per_s": round(self.stored / dt, 1),
        }


class BrokerUnreachable(Exception):
    pass


class Ingest:
    def __init__(
        self,
        store_path: str,
        broker: Broker,
        prefix: str = PREFIX,
        batch: int = 500,
        queue_max: int = 10000,
        worker: int = 0,
        shared: bool = False,
        drain: bool = False,
        on_dropped=None,
    ) -> None:
        """`worker`: this worker's index (its session); `on_dropped(total, new)`: called
        from the network thread when the broker's dropped count rises."""
        self.store_path = store_path
        self.broker = broker
        self.prefix = prefix.rstrip("/")
        self.batch = batch
        self.q: queue.Queue[tuple[str, str, bytes, float, int, int] | None] = queue.Queue(queue_max)
        self.stats = Stats()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.worker = worker
        self.group = share_group(store_path)
        self.shared = shared
        self.drain = drain
        self.last_msg = time.monotonic()
        self.on_dropped = on_dropped
        # One durable session per store and worker index: a second `serve` with the same
        # index on the same store takes it over (the broker disconnects the first).
        self.client_id = client_id(store_path, worker)
        self.c = broker.client(self.client_id, clean_session=False, manual_ack=True)
        self.c.max_inflight_messages_set(100)
        # A shared subscription is not restored by a restarted mosquitto (module docstring):
        # what arrives before the worker is back is lost, so it tries every second.
        self.c.reconnect_delay_set(1, 1 if shared else 5)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.refused: str | None = None

    def _on_connect(self, c, _u, _flags, rc, _props) -> None:
        if rc.is_failure:
            self.refused = str(rc)
            return
        self.stats.connects += 1
        plain = [T.fleet_filter(self.prefix, leaf) for leaf in LEAVES]
        share = [f"$share/{self.group}/{t}" for t in plain]
        # The session may hold the other kind from an earlier run (serve alone, then with
        # workers): both would deliver every message twice over to this worker.
        if self.drain:
            # a retired worker: nothing new routed to it, only what its session holds
            c.unsubscribe(plain + share)
        else:
            c.unsubscribe(plain if self.shared else share)
            c.subscribe([(t, 1) for t in (share if self.shared else plain)] + [(SYS_DROPPED, 0)])
        self.connected.set()

    def _on_disconnect(self, *_a: Any) -> None:
        self.connected.clear()

    def _on_message(self, _c, _u, m) -> None:
        self.last_msg = time.monotonic()
        if m.topic == SYS_DROPPED:
            self._dropped(m.payload)
            return
        parts = m.topic.split("/")
        base = len(self.prefix.split("/"))
        self.stats.received += 1
        if len(parts) != base + 3 or parts[-1] not in LEAVES:
            self.stats.skipped += 1
            if m.qos:
                self.c.ack(m.mid, m.qos)
            return
        # Blocks when the writer is behind: back-pressure onto the broker.
        self.q.put((parts[base + 1], parts[-1], bytes(m.payload), time.time(), m.mid, m.qos))

    def _dropped(self, payload: bytes) -> None:
        try:
            total = int(payload)
        except ValueError:
            return
        was = self.stats.broker_dropped or 0
        self.stats.broker_dropped = total
        if total > was and self.on_dropped is not None:
            self.on_dropped(total, total - was)

    def start(self, timeout: float = 10.0) -> None:
        try:
            self.c.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as e:
            raise BrokerUnreachable(f"broker {self.broker.url}: {e.strerror or e}") from None
        self.c.loop_start()
        if not self.connected.wait(timeout):
            self.c.loop_stop()
            why = f"refused ({self.refused})" if self.refused else "no answer"
            raise BrokerUnreachable(f"broker {self.broker.url}: {why}")
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer")
        self._writer.start()

    def _write_loop(self) -> None:
        store = Store(self.store_path)
        try:
            done = False
            while not done:
                item = self.q.get()
                if item is None:
                    break
                msgs = [item]
                # Whatever has queued meanwhile joins the batch; no waiting for more: the
                # broker sends only so many unacknowledged messages (max_inflight), so
                # a batch must commit to let the next ones come.
                while len(msgs) < self.batch:
                    try:
                        nxt = self.q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        done = True
                        break
                    msgs.append(nxt)
                n = store.ingest([(m[0], m[1], m[2], m[3]) for m in msgs])
                # Committed: now the broker may forget them.
                for m in msgs:
                    if m[5]:
                        self.c.ack(m[4], m[5])
                self.stats.stored += n
                self.stats.skipped += len(msgs) - n
                self.stats.batches += 1
        finally:
            store.close()

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what is queued, disconnect."""
        self.c.on_message = None  # anything arriving now stays with the broker
        self.q.put(None)
        self._writer.join()
        self.c.disconnect()
        self.c.loop_stop()

    def drained(self, idle_s: float) -> bool:
        """Drain mode: nothing arrived for `idle_s` and everything taken is committed (the
        broker sends a resumed session's queue at once, as fast as the acks free its
        in-flight window, so a quiet spell means the queue is empty)."""
        quiet = time.monotonic() - self.last_msg >= idle_s
        return (
            quiet
            and self.q.empty()
            and self.stats.received == self.stats.stored + (self.stats.skipped)
        )

    def forget_session(self) -> None:
        """After a drain: connect once with a clean session, so the broker drops this
        worker's session (and its place in the share group) now, not at its expiry."""
        c = self.broker.client(self.client_id, clean_session=True)
        done = threading.Event()
        c.on_connect = lambda *_a: done.set()
        c.connect(self.broker.host, self.broker.port, keepalive=30)
        c.loop_start()
        done.wait(10)
        c.disconnect()
        c.loop_stop()

    def run_until(self, stop: threading.Event, report_s: float = 10.0, report=None) -> None:
        last = time.monotonic()
        while not stop.wait(0.5):
            if self.drain and self.drained(DRAIN_IDLE_S):
                break
            if report is not None and time.monotonic() - last >= report_s:
                report(self.stats)
                last = time.monotonic()

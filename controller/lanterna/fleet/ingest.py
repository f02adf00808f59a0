"""`lanterna serve`: what the nodes publish, into the store, without losing any of it.

- One MQTT session that outlives us: a fixed client id per store and clean_session off,
  QoS 1 subscriptions to ``{prefix}/+/+/status|state|tele|event``. While serve is
  down or the broker restarts (mosquitto with persistence), the broker keeps the session
  and queues what arrives; paho reconnects on its own.
- Manual acknowledgement: a message is PUBACKed only after the transaction that holds it
  has committed. A crash between delivery and commit makes the broker deliver it again;
  nothing the broker handed over is lost.
- Batches with back-pressure: the network thread hands messages to a bounded queue; the
  writer commits what has queued, up to `batch` messages, in one transaction. When the store
  falls behind the queue fills, the network thread blocks, TCP pushes back, and the
  broker holds the rest.
- SIGTERM or SIGINT: stop taking messages, commit and acknowledge what is queued,
  disconnect.
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


@dataclass
class Stats:
    received: int = 0
    stored: int = 0
    skipped: int = 0  # not a payload its topic carries
    batches: int = 0
    connects: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_json(self) -> dict[str, Any]:
        dt = max(time.monotonic() - self.started, 1e-9)
        return {
            "received": self.received,
            "stored": self.stored,
            "skipped": self.skipped,
            "batches": self.batches,
            "connects": self.connects,
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
    ) -> None:

        self.store_path = store_path
        self.broker = broker
        self.prefix = prefix.rstrip("/")
        self.batch = batch
        self.q: queue.Queue[tuple[str, str, bytes, float, int, int] | None] = queue.Queue(queue_max)
        self.stats = Stats()
        self.connected = threading.Event()
        self._stop = threading.Event()
        # One durable session per store: a second `serve` on the same store takes it over.
        cid = "lanterna-serve-" + hashlib.sha256(store_path.encode()).hexdigest()[:12]
        self.c = broker.client(cid, clean_session=False, manual_ack=True)
        self.c.max_inflight_messages_set(100)
        self.c.reconnect_delay_set(1, 5)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.refused: str | None = None

    def _on_connect(self, c, _u, _flags, rc, _props) -> None:
        if rc.is_failure:
            self.refused = str(rc)
            return
        self.stats.connects += 1
        topics = [(T.fleet_filter(self.prefix, leaf), 1) for leaf in LEAVES]
        c.subscribe(topics)
        self.connected.set()

    def _on_disconnect(self, *_a: Any) -> None:
        self.connected.clear()

    def _on_message(self, _c, _u, m) -> None:
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

    def run_until(self, stop: threading.Event, report_s: float = 10.0, report=None) -> None:
        last = time.monotonic()
        while not stop.wait(0.5):
            if report is not None and time.monotonic() - last >= report_s:
                report(self.stats)
                last = time.monotonic()

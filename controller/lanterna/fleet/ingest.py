"""`lanterna serve`: what the nodes publish, into the store, without losing any of it.

- One MQTT session per worker that outlives it: a fixed client id per store and worker
  index (``lanterna-serve-<store hash>-w<k>``), clean session off, QoS 1 subscriptions to
  ``{prefix}/+/+/status|state|tele|event``, MQTT 3.1.1 (mosquitto 2.0 takes shared
  subscriptions from 3.1.1 clients too, with the same behaviour for a dead member as on
  5, measured alike). The client is lanterna.fleet.mqttsub, not paho: 8 us of CPU a
  message against paho's 63-88 (docs/scale.md). The session expires after the broker's
  persistent_client_expiration (14 days in the generated config). While serve is down
  or the broker restarts (mosquitto with persistence), the broker keeps the session and
  queues what arrives for it; the worker reconnects on its own (at once, then every 1
  to 5 s).
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
- Batches with back-pressure: one thread reads what the socket holds (a few hundred
  PUBLISH packets at a time), commits it in transactions of up to `batch` messages, then
  acknowledges it with one write, and only then reads again. When the store falls behind,
  the socket is not read, TCP pushes back, and the broker holds the rest (it sends at
  most its max_inflight_messages unacknowledged, lanterna.broker.config).
- SIGTERM or SIGINT: stop taking messages, commit and acknowledge what was taken,
  disconnect (the session stays: what arrives meanwhile waits for the next start).
- What the broker dropped because a session's queue was full (serve away longer than the
  queue was sized for, lanterna.broker.config.queue_plan) is not lost silently: the
  broker's ``$SYS/broker/publish/messages/dropped`` count is read, logged when it rises
  and reported (``broker_dropped``, counted since the broker started, for all its
  clients; the nodes' sessions are clean, so a full queue is a serve session's).
"""

from __future__ import annotations

import hashlib
import os
import queue
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lanterna.context import Broker
from lanterna.fleet.mqttsub import Publish, Refused, Session
from lanterna.store.db import Store
from lanterna.wire import topics as T
from lanterna.wire.topics import PREFIX

LEAVES = ("status", "state", "tele", "event")
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"
# serve --drain ends once nothing has arrived for this long
DRAIN_IDLE_S = 3.0
KEEPALIVE_S = 30


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
        worker: int = 0,
        shared: bool = False,
        drain: bool = False,
        on_dropped=None,
    ) -> None:
        """`worker`: this worker's index (its session); `on_dropped(total, new)`: called
        when the broker's dropped count rises. `batch`: the most messages one
        transaction takes (what one read brings is split into batches of this size)."""
        self.store_path = store_path
        self.broker = broker
        self.prefix = prefix.rstrip("/")
        self._base = len(self.prefix.split("/"))
        self.batch = batch
        self.stats = Stats()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.worker = worker
        self.group = share_group(store_path)
        self.shared = shared
        self.drain = drain
        self.last_msg = time.monotonic()
        self.on_dropped = on_dropped
        self._taken = 0  # messages the reader took (reader thread only)
        self._committed = 0  # of them, committed (writer thread only)
        self.failure: Exception | None = None  # what stopped the writer
        # One durable session per store and worker index: a second `serve` with the same
        # index on the same store takes it over (the broker disconnects the first).
        self.client_id = client_id(store_path, worker)
        self.refused: str | None = None
        self.last_error: str | None = None
        self._sess: Session | None = None
        self._thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        # reader -> writer: (session, messages, packet ids), one batch in hand at most
        self._q: queue.Queue[Any]
        self._q = queue.Queue(1)
        self._acks: deque[tuple[Session, list[int]]] = deque()  # writer -> reader: committed

    def _session(self, clean: bool = False) -> Session:
        b = self.broker
        ca = str(b.ca_file()) if b.tls else None
        user = b.user if b.password is not None else None
        return Session(b.host, b.port, self.client_id, user, b.password, ca, KEEPALIVE_S, clean)

    def _open(self, timeout: float = 10.0) -> None:
        s = self._session()
        s.open(timeout)
        plain = [T.fleet_filter(self.prefix, leaf) for leaf in LEAVES]
        share = [f"$share/{self.group}/{t}" for t in plain]
        # The session may hold the other kind from an earlier run (serve alone, then with
        # workers): both would deliver every message twice over to this worker.
        if self.drain:
            # a retired worker: nothing new routed to it, only what its session holds
            s.unsubscribe(plain + share)
        else:
            s.unsubscribe(plain if self.shared else share)
            s.subscribe([(t, 1) for t in (share if self.shared else plain)] + [(SYS_DROPPED, 0)])
        self._sess = s
        self.stats.connects += 1
        self.connected.set()

    def start(self, timeout: float = 10.0) -> None:
        try:
            self._open(timeout)
        except Refused as e:
            self.refused = str(e)
            raise BrokerUnreachable(f"broker {self.broker.url}: refused ({e})") from None
        except (OSError, ssl.SSLError) as e:
            why = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise BrokerUnreachable(f"broker {self.broker.url}: {why}") from None
        self._thread = threading.Thread(target=self._loop, name="ingest")
        self._thread.start()

    def _loop(self) -> None:
        """The network side: read, parse, hand batches to the writer, send the PUBACKs of
        what it committed. The writer commits one batch while this thread reads the next
        (PostgreSQL's time on a batch no longer adds to serve's)."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        writer = threading.Thread(target=self._write_loop, args=(wake_w,), name="ingest-writer")
        self._writer = writer
        writer.start()
        delay = 0.0
        try:
            while not self._stop.is_set():
                if self._sess is None:
                    # Reconnect: at once, then every second, up to every 5 s (1 s for a
                    # shared subscription: a restarted mosquitto did not keep it, and
                    # what arrives before the worker is back is lost; module docstring).
                    if delay and self._stop.wait(delay):
                        break
                    delay = min(max(delay * 2, 1.0), 1.0 if self.shared else 5.0)
                    try:
                        self._open()
                    except (OSError, ssl.SSLError) as e:
                        self.last_error = str(e) or type(e).__name__
                        continue
                    delay = 0.0
                sess = self._sess
                assert sess is not None
                try:
                    self._send_acks(sess, wake_r)
                    pubs = sess.read(0.5, wake_r)
                    if pubs:
                        self._take(sess, pubs)
                    if sess.refused_filters:
                        self.refused = "subscription refused: " + ", ".join(sess.refused_filters)
                        sess.refused_filters.clear()
                except (OSError, ssl.SSLError) as e:
                    # Gone or broken: what was not acknowledged, the broker sends again.
                    self.last_error = str(e) or type(e).__name__
                    sess.close(polite=False)
                    self._sess = None
                    self.connected.clear()
        finally:
            self._hand(None, writer)
            writer.join()  # what was taken is committed
            if self._sess is not None:
                try:
                    self._send_acks(self._sess, wake_r)
                except (OSError, ssl.SSLError):
                    pass  # not acknowledged: the broker sends it again, stored once
                self._sess.close()
                self._sess = None
            self.connected.clear()
            os.close(wake_r)
            os.close(wake_w)

    def _send_acks(self, sess: Session, wake_r: int) -> None:
        while self._acks:
            who, pids = self._acks.popleft()
            # PUBACKs belong to the connection the messages came on: after a reconnect
            # the broker sends those again (with DUP), and the store takes them once.
            if who is sess:
                sess.ack(pids)
        try:
            os.read(wake_r, 4096)
        except BlockingIOError:
            pass

    def _take(self, sess: Session, pubs: list[Publish]) -> None:
        self.last_msg = time.monotonic()
        base = self._base
        now = time.time()
        msgs: list[tuple[str, str, bytes, float]] = []
        pids: list[int] = []
        skipped = 0
        for p in pubs:
            if p.topic == SYS_DROPPED:
                self._dropped(p.payload or b"")
                continue
            self.stats.received += 1
            parts = p.topic.split("/")
            if p.pid:
                pids.append(p.pid)
            if p.payload is None or len(parts) != base + 3 or parts[-1] not in LEAVES:
                skipped += 1
                continue
            msgs.append((parts[base + 1], parts[-1], p.payload, now))
        self._taken += len(msgs) + skipped
        # Blocks while the writer is a batch behind: the socket is not read, TCP pushes
        # back, the broker holds the rest.
        self._hand((sess, msgs, pids, skipped), self._writer)

    def _hand(self, item: Any, writer: threading.Thread | None) -> None:
        while writer is not None and writer.is_alive():
            try:
                self._q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _write_loop(self, wake_w: int) -> None:
        store = Store(self.store_path)
        try:
            while True:
                item = self._q.get()
                if item is None:
                    break
                sess, msgs, pids, skipped = item
                self.stats.skipped += skipped
                for i in range(0, len(msgs), self.batch):
                    chunk = msgs[i : i + self.batch]
                    n = store.ingest(chunk)
                    self.stats.stored += n
                    self.stats.skipped += len(chunk) - n
                    self.stats.batches += 1
                self._committed += len(msgs) + skipped
                # Committed: now the broker may forget them.
                self._acks.append((sess, pids))
                try:
                    os.write(wake_w, b"!")
                except BlockingIOError:
                    pass  # the pipe is full: the reader is woken already
        except Exception as e:  # the store failed: serve stops, nothing acknowledged
            self.failure = e
            self._stop.set()
        finally:
            store.close()

    def _dropped(self, payload: bytes) -> None:
        try:
            total = int(payload)
        except ValueError:
            return
        was = self.stats.broker_dropped or 0
        self.stats.broker_dropped = total
        if total > was and self.on_dropped is not None:
            self.on_dropped(total, total - was)

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what was taken, disconnect (the
        session stays: what arrives meanwhile waits for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def drained(self, idle_s: float) -> bool:
        """Drain mode: nothing arrived for `idle_s` and everything taken is committed (the
        broker sends a resumed session's queue at once, as fast as the acks free its
        in-flight window, so a quiet spell means the queue is empty)."""
        quiet = time.monotonic() - self.last_msg >= idle_s
        return quiet and self.pending == 0 and self.connected.is_set()

    @property
    def pending(self) -> int:
        """Taken from the broker, not yet committed."""
        return self._taken - self._committed

    def forget_session(self) -> None:
        """After a drain: connect once with a clean session, so the broker drops this
        worker's session (and its place in the share group) now, not at its expiry."""
        s = self._session(clean=True)
        try:
            s.open(10.0)
        except (OSError, ssl.SSLError):
            return
        s.close()

    def run_until(self, stop: threading.Event, report_s: float = 10.0, report=None) -> None:
        last = time.monotonic()
        while not stop.wait(0.5):
            if self.drain and self.drained(DRAIN_IDLE_S):
                break
            if self.failure is not None:
                raise self.failure
            if report is not None and time.monotonic() - last >= report_s:
                report(self.stats)
                last = time.monotonic()

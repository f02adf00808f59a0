"""The controller's end of bundle delivery (docs/ota.md, "Delivery"): nodes pull a bundle
in chunks over MQTT and this answers them.

A node downloading publishes ``{prefix}{site}/{node}/ota/req`` with the bundle (the sha256
of its manifest), the offset it needs and the chunk size; the answer goes to that node's
``ota/data``: a 4-byte big-endian offset, then the bytes. Nothing here trusts the node:
an unknown bundle, a bad offset or a malformed request is ignored (and counted), and the
node times out and reports it. Nothing is trusted from here either: the node checks the
manifest's signature and every file's sha256 before anything is switched.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import uuid
from dataclasses import dataclass, field

from lamp.cmd.args import ARGS
from lanterna.broker.url import parse as parse_broker_url
from lanterna.context import Broker
from lanterna.wire import topics as T
from lanterna.wire.topics import PREFIX

MAX_CHUNK = ARGS["ota"]["chunk"][2]  # what a node may ask for at once (lamp.cmd.args)


class ServerError(Exception):
    pass


def bundle_id(bundle: bytes) -> str:
    """The id nodes and the `ota` command use: sha256 of the manifest's bytes (the
    bundle's first tar member)."""
    size = int(bundle[124:136].rstrip(b"\0 ") or b"0", 8)
    return hashlib.sha256(bundle[512 : 512 + size]).hexdigest()


@dataclass
class Served:
    requests: list[tuple[str, int]] = field(default_factory=list)  # (node, offset)
    ignored: int = 0
    bytes: int = 0


class ChunkServer:
    # TCP_NODELAY on the connection to the broker: a chunk leaves at once, not held back
    # by Nagle behind the request's PUBACK until the broker ACKs it (measured: the server's
    # share of a 125-chunk pull 0.15 s -> 0.06 s; bench/bench_ota_rollout.py turns it off
    # to compare).
    nodelay = True

    def __init__(
        self,
        broker: Broker | str,
        user: str = "controller",
        password: str | None = None,
        prefix: str = PREFIX,
    ) -> None:
        if isinstance(broker, str):  # mqtt://HOST:PORT and the account to use
            u = parse_broker_url(broker)
            broker = Broker(u.host, u.port, user, password, u.tls)
        self.broker = broker
        self.prefix = prefix.rstrip("/") + "/"
        self.bundles: dict[str, bytes] = {}
        self.stats = Served()
        self.paused = False  # requests are recorded but not answered (tests, `ota pause`)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._refused: str | None = None
        self.c = broker.client("lanterna-ota-" + uuid.uuid4().hex[:8])
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *_a: self._ready.set()
        self.c.on_message = self._on_message

    @property
    def requests(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self.stats.requests)

    def add(self, bundle: bytes) -> str:
        bid = bundle_id(bundle)
        with self._lock:
            self.bundles[bid] = bundle
        return bid

    def start(self, timeout: float = 10.0) -> ChunkServer:
        try:
            self.c.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as e:
            raise ServerError(f"broker {self.broker.url}: {e.strerror or e}") from None
        self.c.loop_start()
        if not self._ready.wait(timeout) or self._refused:
            self.stop()
            raise ServerError(f"broker {self.broker.url}: {self._refused or 'no answer'}")
        return self

    def stop(self) -> None:
        # DISCONNECT first: it ends paho's loop at once, where loop_stop() first waits out
        # the loop's 1 s select (0.7 s measured on each rollout's end).
        self.c.disconnect()
        self.c.loop_stop()

    def _on_connect(self, c, _u, _f, rc, _p) -> None:
        if rc.is_failure:
            self._refused = f"refused ({rc})"
            self._ready.set()
            return
        sock = c.socket()
        if self.nodelay and sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.subscribe(T.fleet_filter(self.prefix, T.OTA_REQ), qos=1)  # again after every reconnect

    def _on_message(self, _c, _u, m) -> None:
        parts = m.topic[len(self.prefix) :].split("/")
        try:
            req = json.loads(m.payload)
            bid, off, n = req["bundle"], req["offset"], req["n"]
            ok = isinstance(off, int) and isinstance(n, int) and 0 < n <= MAX_CHUNK
        except (ValueError, KeyError, TypeError):
            ok = False
        with self._lock:
            bundle = self.bundles.get(bid) if ok else None
            if bundle is None or not 0 <= off < len(bundle) or len(parts) != 4:
                self.stats.ignored += 1
                return
            self.stats.requests.append((parts[1], off))
            if self.paused:
                return
            data = bundle[off : off + n]
            self.stats.bytes += len(data)
        topic = T.node_topic(self.prefix, parts[0], parts[1], T.OTA_DATA)
        self.c.publish(topic, struct.pack(">I", off) + data, qos=1)

"""The protocol-level fleet (`lanterna sim --protocol N`): thousands of simulated nodes
in one process, on one asyncio loop, speaking exactly the node's wire protocol.

Each node is lanterna.sim.protocol_node (the firmware's own Net, Commands, Control and
telemetry code around a small record); many nodes share one MQTT connection
(lanterna.sim.protocol_conn) with per-node topics. The real-firmware district
(lanterna.sim.district) is the other mode: one MicroPython process per node.

- ``prepare()`` makes (once) and keeps every node's command key and the fleet's MQTT
  account in ``{state_dir}/protocol-{site}.json`` (0600); ``register()`` enters the
  nodes in the controller's store as the district does (site, board ``sim``, key), so
  ``lanterna dim`` and friends command them; a node already registered with its key is
  left alone.
- ``Fleet.run()`` connects, publishes each node's boot, status and state, then
  telemetry every ``tele_s`` from a random phase per node (as nodes booted at different
  times: the node's own cadence is fixed from its boot), until ``stop()``; it calls
  ``on_ready`` once every node's ``online`` has been acknowledged by the broker.
- Counters: each node's counter file is the firmware's own (``lamp.cmd.handler``, with
  its CRC), kept in memory (lanterna.sim.protocol_node.Flash) and saved at the stop in
  ``{state_dir}/ctr/flash.json``; only a node that accepted a command has one.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import json
import math
import os
import random
import resource
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lamp import numbers as N
from lanterna.files import write_atomic
from lanterna.sim.protocol_conn import Conn
from lanterna.sim.protocol_node import FLASH, ProtoNode, firmware

NODES_PER_CONNECTION = 1000  # the default: ceil(N / 1000) connections
USER = "lanterna-sim"  # the fleet's MQTT account (a test broker's; never a production one)


def node_id(site: str, i: int) -> str:
    return f"{site}-p{i:06d}"


def state_file(state_dir: Path, site: str) -> Path:
    return state_dir / f"protocol-{site}.json"


def prepare(state_dir: Path, nodes: int, site: str, user: str = USER) -> dict[str, Any]:
    """Every node's key (made once, kept), and the fleet's MQTT account:
    -> {"user", "password", "nodes": {id: key hex}} (written 0600)."""
    path = state_file(state_dir, site)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "ctr").mkdir(exist_ok=True)
    st = json.loads(path.read_text()) if path.exists() else {}
    st.setdefault("password", secrets.token_urlsafe(18))
    st["user"] = user
    keys = st.setdefault("nodes", {})
    changed = not path.exists()
    for i in range(1, nodes + 1):
        nid = node_id(site, i)
        if nid not in keys:
            keys[nid] = secrets.token_hex(32)
            changed = True
    if changed:
        write_atomic(path, json.dumps(st, separators=(",", ":")).encode(), 0o600)
    st["nodes"] = {node_id(site, i): keys[node_id(site, i)] for i in range(1, nodes + 1)}
    return st


def register(
    store: Any,
    keys: dict[str, str],
    site: str,
    lat: float,
    lon: float,
    tz: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """The nodes into the controller's store (lanterna.sim.district.register's path:
    put_site, put_node with board "sim" and the key). -> how many were written."""
    store.put_site(site, lat, lon, tz)
    have = {n.id: n.key for n in store.nodes()} if hasattr(store, "nodes") else {}
    written = 0
    for i, (nid, key_hex) in enumerate(keys.items()):
        key = bytes.fromhex(key_hex)
        if have.get(nid) != key:
            # Spread over the site's area, so a map shows a district, not one point.
            d = (i % 1000) / 1000
            store.put_node(nid, site, "sim", key, lat=lat + d * 0.01, lon=lon + (i // 1000) * 1e-4)
            written += 1
        if progress is not None:
            progress(1)
    return written


class Fleet:
    def __init__(
        self,
        nodes: Sequence[ProtoNode],
        host: str,
        port: int,
        user: str | None,
        password: str | None,
        connections: int | None = None,
        prefix: str = N.PREFIX,
        keepalive: int = 60,
        outbox_count: int = 64,
        outbox_bytes: int = 8192,
        client_prefix: str = "sim",
        spread_s: float = 0.0,
    ) -> None:
        firmware()
        self.nodes = list(nodes)
        n = len(self.nodes)
        c = connections or math.ceil(n / NODES_PER_CONNECTION)
        if not 1 <= c <= n:
            raise ValueError(f"--connections {c}: expected 1..{n} (the number of nodes)")
        per = math.ceil(n / c)
        self.conns = [
            Conn(
                self,
                k,
                self.nodes[k * per : (k + 1) * per],
                host,
                port,
                user,
                password,
                f"{client_prefix}-{self.nodes[k * per].site}-c{k:05d}",
                prefix,
                keepalive,
                outbox_count,
                outbox_bytes,
                spread_s=spread_s,
            )
            for k in range(c)
            if self.nodes[k * per : (k + 1) * per]
        ]
        self.published: dict[str, int] = {}
        self.commands = 0
        self.attempts_by_100ms: list[int] = []  # connection attempts per 100 ms of the run
        self.up = 0  # nodes whose online the broker acknowledged, on a live link
        self.on_ready: Callable[[dict[str, Any]], None] | None = None
        # every node online again after some were not (a broker restart)
        self.on_online: Callable[[dict[str, Any]], None] | None = None
        self.ready_s: float | None = None
        self._stop = asyncio.Event()
        self._t0 = time.monotonic()
        self.started = time.time()
        self._cpu0 = _cpu()
        self._heap: list = []
        self.flash_path: Path | None = None  # where the counters are saved at the stop

    # callbacks from the connections
    def count(self, topic: str) -> None:
        leaf = topic.rsplit("/", 1)[1]
        self.published[leaf] = self.published.get(leaf, 0) + 1

    def attempt(self) -> None:
        s = int((time.monotonic() - self._t0) * 10)
        bins = self.attempts_by_100ms
        while len(bins) <= s:
            bins.append(0)
        bins[s] += 1

    def attempts_peak_per_s(self, since_s: float = 0.0) -> int:
        """The most connection attempts in any one second (a sliding window of 100 ms
        steps), from `since_s` after the start."""
        b = self.attempts_by_100ms[int(since_s * 10) :]
        return max((sum(b[i : i + 10]) for i in range(max(len(b) - 9, 1))), default=0)

    def commanded(self) -> None:
        self.commands += 1

    def online(self, _node: ProtoNode) -> None:
        self.up += 1
        if self.up < len(self.nodes):
            return
        if self.ready_s is None:
            self.ready_s = time.monotonic() - self._t0
            if self.on_ready is not None:
                self.on_ready(self.summary())
        elif self.on_online is not None:  # every node back after an outage
            self.on_online(self.summary())

    def offline(self, _node: ProtoNode) -> None:
        self.up -= 1

    def all_online(self) -> bool:
        return self.up == len(self.nodes)

    # the loop
    async def run(self, phase: bool = True) -> None:
        """Until stop(): the connections and the telemetry of every node."""
        self._stop.clear()
        self._t0 = time.monotonic()
        self.started = time.time()  # wall clock of attempts_by_100ms[0], for other processes
        now = time.monotonic()
        rnd = random.Random(os.urandom(8))
        self._heap = [
            (now + (rnd.uniform(0, n.tele_s) if phase else n.tele_s), i, n)
            for i, n in enumerate(self.nodes)
        ]
        heapq.heapify(self._heap)
        tasks = [asyncio.ensure_future(c.run()) for c in self.conns]
        ticker = asyncio.ensure_future(self._tele())
        # What is made now lives as long as the fleet: out of the collector's sight, or
        # every full collection walks all of it (CPython's gc, not the node's).
        gc.freeze()
        await self._stop.wait()
        ticker.cancel()
        await asyncio.gather(*(c.stop() for c in self.conns))
        await asyncio.gather(ticker, *tasks, return_exceptions=True)
        if self.flash_path is not None:
            FLASH.save(self.flash_path)

    async def _tele(self) -> None:
        # On the node's cadence (lamp.app.Node._report): each period from the last one's
        # due time; periods missed in a stall are skipped, not sent in a burst.
        from lamp import clock

        h = self._heap
        while True:
            now = time.monotonic()
            while h and h[0][0] <= now:
                due, i, n = heapq.heappop(h)
                n.account(n.tele_s)
                if n.expire(clock.now()):
                    n.state()
                n.tele()
                due += n.tele_s
                if due < now:
                    due += (now - due) // n.tele_s * n.tele_s + n.tele_s
                heapq.heappush(h, (due, i, n))
            wait = h[0][0] - time.monotonic() if h else 1.0
            await asyncio.sleep(min(max(wait, 0.001), 1.0))

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self._t0
        cpu = _cpu() - self._cpu0
        conns = self.conns
        return {
            "nodes": len(self.nodes),
            "connections": len(conns),
            "online": self.up,
            "t": round(time.time(), 3),
            "started": round(self.started, 3),
            "ready_s": None if self.ready_s is None else round(self.ready_s, 2),
            "seconds": round(wall, 1),
            "published": dict(sorted(self.published.items())),
            "acked": sum(c.acked for c in conns),
            "unsent": sum(c.unsent() for c in conns),
            "dropped": sum(c.dropped for c in conns),
            "held_offline": sum(c.held for c in conns),
            "commands": self.commands,
            "accepted": sum(n.accepted for n in self.nodes),
            "rejected": sum(n.rejected for n in self.nodes),
            "attempts": sum(c.attempts for c in conns),
            "connects": sum(c.connects for c in conns),
            "failures": sum(c.failures for c in conns),
            "attempts_peak_per_s": self.attempts_peak_per_s(),
            "cpu_s": round(cpu, 2),
            "cpu_pct": round(100 * cpu / wall, 1) if wall > 0 else None,
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


class Running:
    """A fleet on its own asyncio loop in a thread (tests, benches, the fan-out helper):
    ``ready`` is set once every node is online; ``stop()`` ends it cleanly (every node's
    offline published) and returns the summary."""

    def __init__(self, fleet: Fleet, phase: bool = True) -> None:
        import threading

        self.fleet = fleet
        self.ready = threading.Event()
        fleet.on_ready = lambda _s: self.ready.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(phase,), daemon=True)
        self._thread.start()
        self._started.wait(10)

    def _main(self, phase: bool) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self.fleet.run(phase)

        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 -- reported by stop()
            self.error = e
            self._started.set()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the fleet's loop (its state is the loop's alone)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.fleet.stop)
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.fleet.summary()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def flash_file(state_dir: Path) -> Path:
    """The nodes' counter files, saved at the fleet's stop (lanterna.sim.protocol_node.Flash)."""
    return state_dir / "ctr" / "flash.json"


def make_nodes(
    keys: dict[str, str],
    site: str,
    state_dir: Path,
    tele_s: int,
    prefix: str = N.PREFIX,
    level: int = 0,
) -> list[ProtoNode]:
    ctr = state_dir / "ctr"
    ctr.mkdir(parents=True, exist_ok=True)
    FLASH.load(flash_file(state_dir))
    return [
        ProtoNode(nid, site, key, prefix, f"{ctr}/{nid}.", tele_s, level)
        for nid, key in keys.items()
    ]

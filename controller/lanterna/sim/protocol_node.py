"""One node of the protocol-level fleet: the node's own wire code, without its lamp.

What a protocol node says is made by the firmware's modules imported under CPython, so
it cannot drift from what a pole says:

- ``lamp.net.link.Net``: the topics (``{prefix}/{site}/{node}/{leaf}``), the ``state``
  payload, ``event`` payloads, ``tele``'s ``mqtt_dropped``, and the command path
  (``Net.handle``: the pre-check that answers non-JSON without the handler, then
  ``lamp.cmd.handler.Commands``: canonical form, HMAC-SHA256 under the node's key, the
  counter file with its CRC, the order of the checks, the ack's fields and codes);
- ``lamp.cmd.control.Control``: what an accepted command does and answers (``dim``,
  ``schedule`` validated by ``lamp.schedule``, ``config_set`` checked by
  ``lamp.config``, ``identify``, ``ota`` refused by ``lamp.ota.fetch`` as on a node
  without ``ota_key``);
- ``lamp.telemetry.snapshot``: the ``tele`` payload.

Not importable, or not wanted, under CPython, and replaced here (docs/simulation.md):

- the lamp itself (``lamp.dimmer``, the lighting loop, ``lamp.energy``'s persistence):
  a protocol node's level is its override's, else the fleet's ``schedule_level``; its
  energy counters are a plain model (power from level and rated watts);
- ``lamp.net.mqtt`` (MicroPython's ``asyncio.ticks``, ``wait_for_ms``): the session is
  lanterna.sim.protocol_conn, on the node's own packet codec (``lamp.net.mqtt_packet``);
- ``Control._reboot`` (MicroPython's ``asyncio.sleep_ms``, ``machine.reset``): a protocol
  node "reboots" by announcing offline, then boot, online and state again;
- ``gc.mem_free`` (MicroPython only) in the snapshot: a fixed heap figure; ``gc.collect``
  per snapshot is skipped (in CPython it walks every object of the fleet);
- ``lamp.unload`` in the command path: a RAM saving on the node; in CPython re-importing
  the handler for every command would cost milliseconds, so it is a no-op in this
  process;
- the flash under the counter file: ``Flash``, in memory, saved as one file (the
  handler's own code reads and writes it, CRC and temp file included).

A node is a small slotted record; the firmware objects are built around it for one
command or one payload and dropped, as the node itself loads its command code for one
command.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from lamp import VERSION
from lamp import numbers as N

_patched = False
HEAP_FREE = 40000  # what a connected node on a plain ESP32 reports (docs/pole.md)


class _GC:
    # lamp.telemetry's `gc` in this process: no collection per snapshot, a fixed figure.
    @staticmethod
    def collect() -> None:
        pass

    @staticmethod
    def mem_free() -> int:
        return HEAP_FREE


class _File:
    # One open file of the Flash: read() what it holds, or written whole at close.
    def __init__(self, flash: Flash, path: str, mode: str) -> None:
        self.flash, self.path, self.mode = flash, path, mode
        self.parts: list[str] = []

    def read(self, n: int = -1) -> str:
        text = self.flash.files[self.path]
        return text if n < 0 else text[:n]

    def write(self, s: str) -> int:
        self.parts.append(s)
        return len(s)

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *_exc: object) -> None:
        if "w" in self.mode:
            self.flash.files[self.path] = "".join(self.parts)


class Flash:
    """The nodes' counter files (lamp.cmd.handler's own format and code: the counter, its
    CRC, the temp file and the rename) in memory instead of one file per node: on this
    host each open() of a small file cost ~0.35 ms, three per accepted command. Saved
    to one JSON file at the fleet's stop and loaded at its start, so counters outlive a
    restart of the fleet as they outlive a reboot of the pole."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def open(self, path: str, mode: str = "r") -> _File:
        if "w" not in mode and path not in self.files:
            raise OSError(2, "no such file", path)  # ENOENT, as the handler expects
        return _File(self, path, mode)

    def rename(self, a: str, b: str) -> None:
        self.files[b] = self.files.pop(a)

    def remove(self, path: str) -> None:
        if self.files.pop(path, None) is None:
            raise OSError(2, "no such file", path)

    def load(self, path: Path) -> None:
        try:
            self.files = json.loads(path.read_text())
        except FileNotFoundError:
            self.files = {}

    def save(self, path: Path) -> None:
        from lanterna.files import write_atomic

        write_atomic(path, json.dumps(self.files).encode(), 0o600)


FLASH = Flash()


def firmware() -> None:
    """Prepare the firmware modules for CPython once (see the module docstring)."""
    global _patched
    if _patched:
        return
    from lamp import clock, telemetry
    from lamp.cmd import control, handler
    from lamp.net import link

    def keep(_name: str) -> None:
        pass

    async def reboot(self: Any, delay_s: int) -> None:
        # After the ack has left: the connection plays the reboot (offline, boot, online,
        # state) for this node.
        await asyncio.sleep(delay_s)
        p = self.node.p
        p.conn.reboot(p)

    control.Control._reboot = reboot  # type: ignore[method-assign]
    link.unload = keep
    handler.open = FLASH.open  # type: ignore[attr-defined]  # the handler's counter file
    handler.os = FLASH  # type: ignore[assignment]  # its rename and remove
    handler.unload = keep
    telemetry.gc = _GC  # type: ignore[assignment]
    if getattr(clock, "_clock", None) is None:
        clock.setup()  # the port's RTC: this host's wall clock, valid
    _patched = True


class _Plan:
    __slots__ = ("schedule",)

    def __init__(self, sched: Any) -> None:
        self.schedule = sched


class _Sched:
    __slots__ = ("id",)

    def __init__(self, sid: str) -> None:
        self.id = sid


class _Arbiter:
    # lamp.arbiter.Arbiter's override and plan, the part Control and Net.payload touch.
    __slots__ = ("node", "failsafe_level")

    def __init__(self, node: ProtoNode) -> None:
        self.node = node
        self.failsafe_level = node.failsafe

    @property
    def override(self) -> list | None:
        return self.node.override

    @property
    def plan(self) -> _Plan | None:
        s = self.node.schedule
        return None if s is None else _Plan(_Sched(s))

    def set_override(self, level: int, until_utc: int, fade_s: int | None = None) -> None:
        self.node.override = [level, until_utc, fade_s]

    def clear_override(self) -> None:
        self.node.override = None

    def set_plan(self, plan: Any) -> None:
        self.node.schedule = plan.schedule.id


class _Dimmer:
    __slots__ = ("node",)

    def __init__(self, node: ProtoNode) -> None:
        self.node = node

    @property
    def level(self) -> int:
        return self.node.level()

    @property
    def reason(self) -> str:
        return self.node.mode()

    @reason.setter
    def reason(self, _r: str) -> None:
        pass

    def set(self, level: int, reason: str, fade: int = 0) -> None:
        pass  # identify's blinks: the simulated lamp has nothing to blink


class _Energy:
    __slots__ = ("node",)

    def __init__(self, node: ProtoNode) -> None:
        self.node = node

    def status(self) -> dict[str, Any]:
        n = self.node
        return {
            "burn_h": n.burn_s // 36 / 100,
            "kwh": n.mwh / 1000000,
            "power_w": n.power_mw() / 1000,
            "switch_on": n.switch_on,
            "source": "model",
        }

    def save(self) -> None:
        pass


class _Faults:
    @staticmethod
    def status() -> list:
        return []


class _Event:
    @staticmethod
    def set() -> None:
        pass


class _Hal:
    @staticmethod
    def set_status_led(_on: bool) -> None:
        pass

    @staticmethod
    def reset_cause() -> str:
        return "power_on"


class _Shim:
    # The `node` that lamp.net.link.Net, lamp.cmd.control.Control and
    # lamp.telemetry.snapshot see: built around a ProtoNode for one operation.
    def __init__(self, node: ProtoNode) -> None:
        self.p = node
        self.root = node.root
        self.cfg: dict[str, Any] = {
            "tele_s": node.tele_s,
            "failsafe_level": node.failsafe,
            "log_level": node.log_level,
            "ota_key": None,
            "lat": 0.0,
            "lon": 0.0,
        }
        self.arbiter = _Arbiter(node)
        self.dimmer = _Dimmer(node)
        self.energy = _Energy(node)
        self.faults = _Faults
        self.wake = _Event
        self.hal = _Hal
        self.sensors = None
        self.evse = None
        self.link = None
        self.net: Any = None

    def save_lamp(self) -> None:
        pass  # the override lives in the record, which is the node's "flash"

    def replace_schedule(self, obj: dict, path: str | None = None) -> Any:
        # lamp.app.Node.replace_schedule without the file: the node's own validation.
        from lamp import schedule

        sched = schedule.parse(obj)
        self.p.schedule = sched.id
        return sched

    def commit(self) -> None:
        # config_set's effect back into the record
        p = self.p
        p.tele_s = self.cfg["tele_s"]
        p.failsafe = self.cfg["failsafe_level"]
        p.log_level = self.cfg["log_level"]


class _Outbox:
    # Net's `mq`: what Net publishes goes to the node's connection (its outbox there).
    __slots__ = ("node", "dropped", "pending")
    untrusted = None  # TLS refusals (lamp.net.mqtt): the protocol fleet speaks plain MQTT

    def __init__(self, node: ProtoNode) -> None:
        self.node = node
        self.dropped = node.dropped
        self.pending = 0

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False) -> bool:
        return self.node.conn.publish(self.node, topic, payload, qos, retain)


class ProtoNode:
    """One simulated node: its identity, its key, and the little state the wire shows."""

    __slots__ = (
        "id",
        "site",
        "key_hex",
        "base",
        "root",
        "conn",
        "tele_s",
        "failsafe",
        "log_level",
        "override",
        "schedule",
        "sched_level",
        "rated_w",
        "mwh",
        "burn_s",
        "switch_on",
        "dropped",
        "out",
        "out_bytes",
        "online",
        "booted",
        "seq",
        "accepted",
        "rejected",
    )

    def __init__(
        self,
        node_id: str,
        site: str,
        key_hex: str,
        prefix: str,
        root: str,
        tele_s: int,
        sched_level: int = 0,
        rated_w: int = 50,
    ) -> None:
        self.id = node_id
        self.site = site
        self.key_hex = key_hex
        self.base = f"{prefix.rstrip('/')}/{site}/{node_id}/"
        self.root = root  # prefix of the node's files: its counter file is root + "cmdctr"
        self.conn: Any = None
        self.tele_s = tele_s
        self.failsafe = 100
        self.log_level = "info"
        self.override: list | None = None
        self.schedule: str | None = None
        self.sched_level = sched_level
        self.rated_w = rated_w
        self.mwh = 0
        self.burn_s = 0
        self.switch_on = 0
        self.dropped = 0  # outbox messages dropped (the node's mqtt_dropped)
        self.out: list | None = None  # this node's messages in its connection's outbox
        self.out_bytes = 0
        self.online = False  # its status "online" was acknowledged by the broker
        self.booted = False  # its boot event was queued
        self.seq = 0  # tele sent
        self.accepted = self.rejected = 0

    # -- the lamp, simulated -------------------------------------------------------------

    def level(self) -> int:
        # lamp.arbiter's order without its lighting maths: the override, else the
        # fleet's level under a schedule, else the failsafe (no schedule on the node).
        ov = self.override
        if ov is not None:
            return ov[0]
        return self.sched_level if self.schedule is not None else self.failsafe

    def mode(self) -> str:
        if self.override is not None:
            return "override"
        return "schedule" if self.schedule is not None else "failsafe"

    def power_mw(self) -> int:
        lvl = self.level()
        return lvl * self.rated_w * 10 if lvl else 0

    def expire(self, now: int) -> bool:
        # An override whose end has passed gives the lamp back to the schedule.
        ov = self.override
        if ov is not None and ov[1] != N.FOREVER and ov[1] <= now:
            self.override = None
            return True
        return False

    def account(self, seconds: float) -> None:
        p = self.power_mw()
        self.mwh += int(p * seconds / 3600)
        if p:
            self.burn_s += int(seconds)

    # -- the firmware's code around it ---------------------------------------------------

    def _net(self) -> tuple[Any, _Shim, _Outbox]:
        from lamp.net.link import Net

        shim = _Shim(self)
        net = Net(shim, {"node": self.id, "key": self.key_hex, "mqtt": None, "coap_port": 0})
        net.base = self.base
        mq = _Outbox(self)
        net.mq = mq  # type: ignore[assignment]  # what Net publishes through: publish, dropped
        shim.net = net
        return net, shim, mq

    def on_connect(self) -> None:
        # lamp.net.link.Net._on_connect: status online (retained), then the state.
        net, _s, _m = self._net()
        net._on_connect()

    def boot(self, reset_cause: str = "power_on") -> None:
        # lamp.app.Node._connect's boot event (queued before the first connection).
        net, _s, _m = self._net()
        net.event(N.EV_BOOT, {"reset_cause": reset_cause, "fw": VERSION})
        self.booted = True

    def state(self) -> None:
        net, _s, _m = self._net()
        net.state()

    def tele(self) -> None:
        from lamp import telemetry

        net, shim, _m = self._net()
        net.tele(telemetry.snapshot(shim))
        self.seq += 1

    def command(self, topic: str, payload: bytes) -> dict | None:
        """A message on this node's cmd topic: Net's path (ack published) and, when the
        lamp changed, the new state, as the lighting loop publishes it. -> the ack."""
        net, shim, _m = self._net()
        before = (self.level(), self.mode(), self.schedule)
        acks: list = []
        orig = net._pub

        def pub(leaf: str, body: Any, retain: bool = False) -> None:
            if leaf == N.ACK:
                acks.append(body)
            orig(leaf, body, retain)

        net._pub = pub
        net._on_message(topic, payload)
        shim.commit()
        ack = json.loads(acks[0]) if acks else None
        if ack is not None:
            if ack["ok"]:
                self.accepted += 1
            else:
                self.rejected += 1
        if (self.level(), self.mode(), self.schedule) != before:
            net.state()
        return ack


def new_key() -> str:
    return os.urandom(32).hex()

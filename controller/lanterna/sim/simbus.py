"""The sim board's chips for virtual nodes, served from the controller's process.

Each virtual node (a MicroPython process) connects once over loopback TCP and sends every
I2C transaction and UART exchange here (wire format: firmware/lamp/hal/simbus.py). The
chips are the same byte-level models the firmware tests use (lamp.hal.simdev), running
in CPython: they take none of the node's heap, as real chips take none of the pole's,
and a test breaks a chip of a running node with ``bus.node(i).models["bme280"].fault =
"nack"``. Models follow the node's own (possibly warped) clock: every request carries it.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

_HDR = struct.Struct(">BBHIH")
_ENODEV = 19
_EIO = 5


@dataclass
class Devices:
    """One node's chips: I2C models by address, the UART model, and their names."""

    sensors: list[str]
    rtc: str | None
    t: int = 0  # the node's UTC seconds at its last request
    lux: float | None = None  # ambient light for the BH1750 model; None: a clear sky
    i2c: dict[int, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    nack: set[int] = field(default_factory=set)
    _uart: Any = None

    def build(self) -> None:
        from lamp.hal.sim import SimUART
        from lamp.hal.simdev import rtc_model, sensor_model

        now = lambda: self.t  # noqa: E731 -- the models' clock is the node's
        self._uart = SimUART()
        if self.rtc is not None:
            addr, chip = rtc_model(self.rtc, now)
            self.i2c[addr] = chip
            self.models["rtc"] = chip
        for name in self.sensors:
            addr, m = sensor_model(name, self, now)
            self.models[name] = m
            if addr is not None:
                self.i2c[addr] = m

    def uart(self, _baud: int = 9600) -> Any:
        # as the hal gives the UART to sensor_model()
        return self._uart

    def serve(self, op: int, arg: int, n: int, data: bytes) -> tuple[int, bytes]:
        if op in (0x57, 0x52):  # W, R
            dev = self.i2c.get(arg)
            if dev is None or arg in self.nack:
                return _ENODEV, b""
            try:
                if op == 0x57:
                    dev.write(data)
                    return 0, b""
                out = dev.read(n)
            except OSError as e:
                return (e.args[0] if e.args and isinstance(e.args[0], int) else _EIO), b""
            return 0, bytes(out)
        if op == 0x53:  # S
            return 0, bytes(sorted(a for a in self.i2c if a not in self.nack))
        if op == 0x55:  # U
            m = self._uart.model
            if m is not None and m.live:
                m.step()
            return 0, self._uart.read(n) or b""
        if op == 0x54:  # T
            m = self._uart.model
            if m is not None:
                m.on_write(data)
            return 0, b""
        return _EIO, b""


class SimBus:
    """A loopback server holding the chips of every virtual node that connects."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._srv = socket.create_server((host, port))
        host, port = self._srv.getsockname()[:2]
        self.address = f"{host}:{port}"
        self.nodes: list[Devices] = []
        self._lock = threading.Lock()
        self._joined = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def start(self) -> SimBus:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def node(self, i: int) -> Devices:
        return self.nodes[i]

    def wait_time(self, dev: Devices, t: int, timeout: float = 30.0) -> None:
        """Until the node behind `dev` has reached UTC second `t` of its own clock (its
        requests carry it); TimeoutError after `timeout` real seconds."""
        with self._joined:
            if not self._joined.wait_for(lambda: dev.t >= t, timeout):
                raise TimeoutError(f"node clock at {dev.t}, waited for {t}")

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            # Request and answer are one small segment each: never held back for an ACK.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    @staticmethod
    def _recv(conn: socket.socket, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = conn.recv(n - len(out))
            if not chunk:
                raise ConnectionError
            out += chunk
        return out

    def _serve(self, conn: socket.socket) -> None:
        dev: Devices | None = None
        try:
            while True:
                op, arg, n, t, size = _HDR.unpack(self._recv(conn, _HDR.size))
                data = self._recv(conn, size) if size else b""
                if op == 0x48:  # H: hello
                    hello = json.loads(data)
                    dev = Devices(list(hello["sensors"]), hello.get("rtc"), t)
                    dev.build()
                    with self._joined:
                        self.nodes.append(dev)
                        self._joined.notify_all()
                    status, body = 0, b""
                elif dev is None:
                    status, body = _EIO, b""
                else:
                    if t != dev.t:  # the models' clock first, then the transaction
                        with self._joined:
                            dev.t = t
                            self._joined.notify_all()
                    with self._lock:
                        status, body = dev.serve(op, arg, n, data)
                conn.sendall(struct.pack(">BH", status, len(body)) + body)
        except (ConnectionError, OSError, ValueError, KeyError):
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown does
        try:
            self._srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._srv.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in self._threads:
            t.join(2)

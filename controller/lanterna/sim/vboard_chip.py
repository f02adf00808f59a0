"""The chip of a virtual board (lanterna.sim.vboard): one MicroPython unix process running
``vboard_driver.py``, from one reset to the next, and the record stream it writes.

The driver's stdout is the board's UART: the program's output as it comes, with records
(``"\\x1e" MARK KIND LEN ":" PAYLOAD``, MARK a fresh nonce per process) that say when a
block ended and with which traceback, or that it asked for a reset.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path

from lanterna.paths import MP_SCRIPTS
from lanterna.procs import die_with_parent

DRIVER = MP_SCRIPTS / "vboard_driver.py"
# What the driver keeps resident, added to the board's budget so that the budget is what
# the code on the board may use: 12160 bytes allocated at an idle prompt vs 992 for an
# empty script on the unix port (MicroPython 1.29).
DRIVER_HEAP = 12 * 1024


def split_records(buf: bytes, mark: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The chip's stdout cut into events: ([(kind, payload)], rest). Kind b"" is the
    program's output; rest is what may still become a record (one not yet whole, or a
    tail that could be the start of the mark), held back until more comes."""
    events: list[tuple[bytes, bytes]] = []
    while buf:
        i = buf.find(mark)
        if i < 0:
            keep = next((k for k in range(len(mark) - 1, 0, -1) if buf.endswith(mark[:k])), 0)
            if len(buf) > keep:
                events.append((b"", buf[: len(buf) - keep]))
            return events, buf[len(buf) - keep :]
        if i:
            events.append((b"", buf[:i]))
        head = buf[i + len(mark) :]
        colon = head.find(b":")
        if colon < 0 or len(head) < colon + 1 + int(head[1:colon]):
            return events, buf[i:]
        end = colon + 1 + int(head[1:colon])
        events.append((head[:1], head[colon + 1 : end]))
        buf = head[end:]
    return events, b""


class Chip:
    """One driver process. Its output and records go to `events` as ("chip", gen, kind,
    payload), its end as ("exit", gen, status): a board tells generations apart by gen."""

    def __init__(self, gen: int, events: asyncio.Queue) -> None:
        self.gen = gen
        self.ready = False  # the driver runs (its R record came)
        self._events = events
        self._running = False  # the board's code runs: between the driver's B and E records
        self._sent = False  # this run's SIGINT has been sent
        self._held = False  # a Ctrl-C waiting for the board's code to start
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None

    async def start(
        self, binary: str, heap: int, root: Path, mode: str, machine: str, cause: str | None
    ) -> None:
        mark = secrets.token_hex(8)
        env = dict(os.environ, MICROPYPATH=".frozen")
        if cause:  # lamp.hal.sim reports it as the node's reset cause
            env["LANTERNA_RESET_CAUSE"] = cause
        self._proc = await asyncio.create_subprocess_exec(
            *(binary, "-X", f"heapsize={heap}", str(DRIVER), str(root), mode, mark, machine),
            cwd=root,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal is the server's, not the chip's
            preexec_fn=die_with_parent,
        )
        self._reader = asyncio.create_task(self._read(b"\x1e" + mark.encode()))

    async def _read(self, mark: bytes) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        rest = b""
        while chunk := await proc.stdout.read(65536):
            events, rest = split_records(rest + chunk, mark)
            for kind, payload in events:
                if kind == b"B":
                    self._running, self._sent = True, False
                    if self._held:
                        self._held = False
                        self._signal()
                    continue
                if kind == b"E":
                    # No SIGINT from now on; the driver waits for this answer, so the one
                    # sent (if any) has reached it first.
                    self._running = False
                    self.send(b"A", b"")
                    continue
                if kind == b"R":
                    self.ready = True
                else:  # the boot or a block has ended: a held Ctrl-C had nothing to stop
                    self._held = False
                self._events.put_nowait(("chip", self.gen, kind, payload))
        self._events.put_nowait(("chip", self.gen, b"", rest))
        self._events.put_nowait(("exit", self.gen, await proc.wait()))

    def send(self, kind: bytes, src: bytes) -> None:
        """A frame for the driver: b"E" a raw-REPL block (file input), b"L" friendly
        input (single), b"A" the answer to its E record."""
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.write(b"%s %d\n" % (kind, len(src)) + src)

    def interrupt(self) -> None:
        """Ctrl-C: a KeyboardInterrupt in the board's code, as a board takes it at any
        moment. SIGINT goes only while that code runs (the driver's B to E records), once
        per run: anywhere else it would kill the driver (the unix port raises it at its next
        jump, or exits on a second one before that). A Ctrl-C before the code starts (the
        driver starting, a block in transit) is held for it; one for a boot or block that
        runs no code of the board's is dropped when it ends, as there is nothing to stop."""
        if not self._running:
            self._held = True
        elif not self._sent:
            self._signal()

    def _signal(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._sent = True
            self._proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    async def wait(self) -> None:
        if self._proc is not None:
            await self._proc.wait()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)

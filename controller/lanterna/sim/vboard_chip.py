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
# A SIGINT is sometimes lost (vboard_driver.py): one that has not ended the code goes
# again after RESEND_S, at most RESENDS times. Lost ones were seen only within a few ms
# of the process writing output, so the spacing is many times that, and one that did
# land has had time to end the code (a SIGINT that lands in the driver after the code
# is harmless, but each one is a KeyboardInterrupt for a program that catches them).
RESEND_S = 0.25
RESENDS = 8


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
        self._sent = False  # this run's Ctrl-C has been delivered (a G answer or SIGINT)
        self._held = False  # a Ctrl-C waiting for the board's code to start
        self._runs = 0  # runs of code started (B records): a resend is for one run only
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
                if kind == b"W":  # the code is about to start: was it interrupted first?
                    self._sent, self._held = self._held, False
                    self.send(b"G", b"K" if self._sent else b"")
                    continue
                if kind == b"B":
                    self._running = True
                    self._runs += 1
                    if self._held:  # came between W and B
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
                elif kind:  # the boot or a block has ended: a held Ctrl-C had nothing to stop
                    self._held = False
                self._events.put_nowait(("chip", self.gen, kind, payload))
        self._events.put_nowait(("chip", self.gen, b"", rest))
        self._events.put_nowait(("exit", self.gen, await proc.wait()))

    def send(self, kind: bytes, src: bytes) -> None:
        """A frame for the driver: b"E" a raw-REPL block (file input), b"L" friendly
        input (single), b"G" the answer to its W record, b"A" the answer to its E."""
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.write(b"%s %d\n" % (kind, len(src)) + src)

    def interrupt(self) -> None:
        """Ctrl-C: a KeyboardInterrupt in the board's code, as a board takes it at any
        moment. One that comes before the code starts (the driver starting, a block in
        transit) is held for it and goes with the driver's W answer; one for a boot or
        block that runs no code of the board's is dropped when it ends, as there is
        nothing to stop. While the code runs (the driver's B to E records) it is SIGINT,
        once per run, sent again until the code ends (RESEND_S)."""
        if not self._running:
            self._held = True
        elif not self._sent:
            self._signal()

    def _signal(self, n: int = 0) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._sent = True
            self._proc.send_signal(signal.SIGINT)
            if n < RESENDS:
                loop = asyncio.get_running_loop()
                loop.call_later(RESEND_S, self._resend, self._runs, n + 1)

    def _resend(self, run: int, n: int) -> None:
        if self._running and self._runs == run:  # that run goes on: the SIGINT was lost
            self._signal(n)

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    async def wait(self) -> None:
        if self._proc is not None:
            await self._proc.wait()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)

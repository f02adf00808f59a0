"""The UART particulate drivers in MicroPython against streams built here, in CPython.

CPython builds PMS5003 and SDS011 byte streams with `struct` from random values: good
frames, frames with a wrong checksum (or SDS011 tail), PMS5003 frames with a length no
frame has, frames cut short, command answers, and noise between them; then cuts each
stream into random chunks and works out, from where each frame ends in the stream, what
a read() after each chunk must give: the newest good frame's values, None, or a
SensorError when only bad frames ended in the chunk. It also computes the host commands
from the datasheets' layouts. tests/firmware/check_uart_frames.py replays every stream
through lamp.sensors.pms5003 / sds011 inside MicroPython, under the pole's heap budget,
and reports how many reads it checked; the test fails unless every one was checked.
"""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path

import pytest

import mpharness

CHECK = Path(__file__).parent / "firmware" / "check_uart_frames.py"
STREAMS = 150  # per device
SEED = 20261125


class Device:
    name = ""
    frame_len = 0
    noise_forbidden: set[int] = set()

    def header_inside(self, data: bytes) -> bool:
        raise NotImplementedError


class Pms(Device):
    # PMS5003 data manual V2.3, Appendix I: 42 4D, length 28 (BE), 13 BE words, sum.
    name = "pms"
    frame_len = 32
    noise_forbidden = {0x42, 0x4D}

    def header_inside(self, data):
        return b"\x42\x4d" in data[1:]

    def good(self, rng):
        words = [rng.randrange(0, 1000) for _ in range(12)] + [0]
        body = struct.pack(">BBH13H", 0x42, 0x4D, 28, *words)
        return body + struct.pack(">H", sum(body) & 0xFFFF), tuple(words[3:6])

    def bad(self, rng, frame):
        # a wrong checksum, or a length field no frame has (seen after 4 bytes)
        if rng.random() < 0.5:
            chk = (struct.unpack(">H", frame[30:])[0] + rng.randrange(1, 0xFFFF)) & 0xFFFF
            return frame[:30] + struct.pack(">H", chk), self.frame_len
        n = rng.choice([0, 3, 27, 29, 100, 0x4242, 0xFFFF])
        tail = bytes(_noise(rng, self, rng.randrange(0, 10)))
        return b"\x42\x4d" + struct.pack(">H", n) + tail, 4

    def ack(self, rng):
        cmd, data = rng.choice([(0xE1, 0), (0xE1, 1), (0xE4, 0), (0xE4, 1)])
        body = struct.pack(">BBHBB", 0x42, 0x4D, 4, cmd, data)
        return body + struct.pack(">H", sum(body))

    def commands(self):
        # Appendix II: 42 4D CMD DATAH DATAL LRCH LRCL, LRC = 16-bit sum of bytes 0..4.
        def cmd(c, d):
            body = struct.pack(">BBBH", 0x42, 0x4D, c, d)
            return body + struct.pack(">H", sum(body))

        return {
            "start_passive": cmd(0xE4, 1) + cmd(0xE1, 0),
            "start_active": cmd(0xE4, 1) + cmd(0xE1, 1),
            "read_passive": cmd(0xE2, 0),
            "sleep": cmd(0xE4, 0),
            "wake": cmd(0xE4, 1),
        }


class Sds(Device):
    # Laser Dust Sensor Control Protocol V1.3: AA C0 PM2.5 PM10 (LE, tenths) ID sum AB.
    name = "sds"
    frame_len = 10
    noise_forbidden = {0xAA, 0xC0, 0xC5}

    def header_inside(self, data):
        return b"\xaa\xc0" in data[1:] or b"\xaa\xc5" in data[1:]

    def _frame(self, kind, a, b, ident):
        body = struct.pack("<HHH", a, b, ident)
        return bytes([0xAA, kind]) + body + bytes([sum(body) & 0xFF, 0xAB])

    def good(self, rng):
        a, b = rng.randrange(0, 10000), rng.randrange(0, 10000)
        return self._frame(0xC0, a, b, rng.randrange(0x10000)), (a, b)

    def bad(self, rng, frame):
        f = bytearray(frame)
        if rng.random() < 0.5:
            f[8] = (f[8] + rng.randrange(1, 256)) & 0xFF
        else:
            f[9] = rng.choice([0x00, 0xAC, 0xBA, 0xFF])
        return bytes(f), self.frame_len

    def ack(self, rng):
        cmd, value = rng.choice([(2, 0), (2, 1), (6, 0), (6, 1)])
        return self._frame(0xC5, cmd | 1 << 8, value, rng.randrange(0x10000))

    def commands(self):
        # AA B4, data 1..15 (data 14, 15 = FF FF: every sensor), sum of data 1..15, AB.
        def cmd(d1, d2=0, d3=0):
            data = struct.pack(">BBB10xH", d1, d2, d3, 0xFFFF)
            return bytes([0xAA, 0xB4]) + data + bytes([sum(data) & 0xFF, 0xAB])

        return {
            "start_passive": cmd(6, 1, 1) + cmd(2, 1, 1),
            "start_active": cmd(6, 1, 1) + cmd(2, 1, 0),
            "read_passive": cmd(4),
            "sleep": cmd(6, 1, 0),
            "wake": cmd(6, 1, 1),
        }


def _noise(rng, dev, n):
    # Line noise that cannot start or finish a header (so where each frame is found, and
    # when each bad one is seen, is known exactly).
    out = []
    while len(out) < n:
        b = rng.randrange(256)
        if b not in dev.noise_forbidden:
            out.append(b)
    return out


def _clean(rng, dev, make):
    # A frame with no header pattern inside it, however it was built.
    while True:
        got = make()
        if not dev.header_inside(got[0]):
            return got


def build_stream(rng, dev):
    # -> (stream bytes, events): events are (offset at which the driver sees it, kind,
    # values), kind "good" or "bad".
    out = bytearray()
    events = []
    segments = rng.randrange(1, 16)
    i = 0
    while i < segments:
        i += 1
        r = rng.random()
        if r < 0.2:
            out += bytes(_noise(rng, dev, rng.randrange(1, 40)))
            continue
        if r < 0.3:
            out += _clean(rng, dev, lambda: (dev.ack(rng),))[0]
            continue
        frame, values = _clean(rng, dev, lambda: dev.good(rng))
        start = len(out)
        if r < 0.5:
            bad, seen = _clean(rng, dev, lambda f=frame: dev.bad(rng, f))
            out += bad
            events.append((start + seen, "bad", None))
            continue
        if r < 0.6:
            # cut short; the driver only sees it when a full frame's bytes have come,
            # so a good frame follows at once
            out += frame[: rng.randrange(4, dev.frame_len)]
            events.append((start + dev.frame_len, "bad", None))
            frame, values = _clean(rng, dev, lambda: dev.good(rng))
            start = len(out)
            i += 1
        out += frame
        events.append((start + len(frame), "good", values))
    return bytes(out), events


def expected_reads(rng, stream, events):
    cuts = [0]
    while cuts[-1] < len(stream):
        cuts.append(min(len(stream), cuts[-1] + rng.randrange(1, 80)))
    chunks, want = [], []
    for a, b in zip(cuts, cuts[1:], strict=False):
        chunks.append(stream[a:b].hex())
        ended = [e for e in events if a < e[0] <= b]
        goods = [e[2] for e in ended if e[1] == "good"]
        if goods:
            want.append(list(goods[-1]))
        elif ended:
            want.append("E")  # SensorError: only bad frames ended in this read
        else:
            want.append(None)
    return chunks, want


def write_vectors(path: Path) -> dict:
    rng = random.Random(SEED)
    stats = {"streams": 0, "reads": 0, "frames": 0, "bad": 0, "errors": 0, "commands": 0}
    with path.open("w") as f:
        for dev in (Pms(), Sds()):
            for op, data in dev.commands().items():
                f.write(json.dumps({"dev": dev.name, "cmd": op, "hex": data.hex()}) + "\n")
                stats["commands"] += 1
            for _ in range(STREAMS):
                stream, events = build_stream(rng, dev)
                chunks, want = expected_reads(rng, stream, events)
                frames = sum(1 for e in events if e[1] == "good")
                bad = len(events) - frames
                row = {"dev": dev.name, "chunks": chunks, "want": want}
                row.update(frames=frames, bad=bad)
                f.write(json.dumps(row) + "\n")
                stats["streams"] += 1
                stats["reads"] += len(chunks)
                stats["frames"] += frames
                stats["bad"] += bad
                stats["errors"] += want.count("E")
    return stats


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    path = tmp_path_factory.mktemp("uart") / "frames.jsonl"
    stats = write_vectors(path)
    return stats, mpharness.run_vectors(CHECK, "check_frames", "UART_VECTORS", path)


def test_vectors_cover_every_case(checked):
    stats, _ = checked
    assert stats["streams"] == 2 * STREAMS
    assert stats["frames"] > 500 and stats["bad"] > 100 and stats["errors"] > 20, stats


def test_micropython_read_every_chunk_as_computed_here(checked):
    stats, out = checked
    m = re.search(
        r"UART streams=(\d+) reads=(\d+) frames=(\d+) bad=(\d+) commands=(\d+) mismatches=(\d+)",
        out,
    )
    assert m, out
    got = [int(g) for g in m.groups()]
    want = [stats[k] for k in ("streams", "reads", "frames", "bad", "commands")] + [0]
    assert got == want, out

"""lamp.net.coap in MicroPython against real CoAP peers: aiocoap, libcoap's coap-client, and
raw UDP datagrams (duplicates, a fuzz run).

The server is tests/firmware/check_coap.py's serve() in its own MicroPython process
under the node's heap budget; every test starts one and the spawn fixture stops it.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from coapclient import COAP_CLIENT, aiocoap_run
from mpharness import firmware_command

CHECK = Path(__file__).parent / "firmware" / "check_coap.py"
BIG = bytes((i * 7) % 251 for i in range(3000))  # check_coap.big()
UPLOAD = bytes(random.Random(7).getrandbits(8) for _ in range(3000))
TIMEOUT = 5.0


def free_udp_port() -> int:
    # MicroPython has no getsockname(): the port is chosen here and handed over.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(spawn):
    """Start a CoAP server; -> its port once it printed that it listens."""

    def start(szx: int = 6, max_body: int = 8192) -> int:
        port = free_udp_port()
        argv, env, cwd = firmware_command(
            CHECK,
            "serve",
            extra_env={
                "COAP_PORT": str(port),
                "COAP_SZX": str(szx),
                "COAP_MAX_BODY": str(max_body),
            },
        )
        proc = spawn(argv, env=env, cwd=cwd)
        proc.wait_for(f"listening on 127.0.0.1:{port}", timeout=30)
        return port

    return start


# A hand-built CoAP request (RFC 7252 sec. 3), independent of both the node's codec and
# aiocoap's: the raw tests say exactly which bytes go on the wire.
def request(
    mid: int,
    path: str = "state",
    code: int = 1,
    typ: int = 0,
    token: bytes = b"\x42",
    opts: tuple = (),
    payload: bytes = b"",
) -> bytes:
    out = bytearray([0x40 | typ << 4 | len(token), code]) + struct.pack("!H", mid) + token
    items = [(11, seg.encode()) for seg in path.split("/") if seg] + list(opts)
    prev = 0
    for num, val in sorted(items, key=lambda o: o[0]):
        d, n = num - prev, len(val)
        prev = num
        ext = b""
        nib = []
        for v in (d, n):
            if v < 13:
                nib.append(v)
            elif v < 269:
                nib.append(13)
                ext += bytes([v - 13])
            else:
                nib.append(14)
                ext += struct.pack("!H", v - 269)
        out += bytes([nib[0] << 4 | nib[1]]) + ext + val
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def parse(dgram: bytes) -> tuple[int, int, int, bytes, dict[int, list[bytes]], bytes]:
    """-> (type, code, mid, token, {option: [values]}, payload) of a well-formed message."""
    typ, tkl = dgram[0] >> 4 & 3, dgram[0] & 15
    code, mid = dgram[1], struct.unpack("!H", dgram[2:4])[0]
    token, i, num, opts = dgram[4 : 4 + tkl], 4 + tkl, 0, {}
    while i < len(dgram) and dgram[i] != 0xFF:
        d, n, i = dgram[i] >> 4, dgram[i] & 15, i + 1
        if d == 13:
            d, i = dgram[i] + 13, i + 1
        if n == 13:
            n, i = dgram[i] + 13, i + 1
        num += d
        opts.setdefault(num, []).append(dgram[i : i + n])
        i += n
    return typ, code, mid, token, opts, dgram[i + 1 :]


class Udp:
    def __init__(self, port: int) -> None:
        self.addr = ("127.0.0.1", port)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(TIMEOUT)

    def send(self, dgram: bytes) -> None:
        self.s.sendto(dgram, self.addr)

    def recv(self) -> bytes:
        return self.s.recvfrom(2048)[0]

    def ask(self, dgram: bytes) -> bytes:
        """Send a CON and return the ACK or RST with its message ID (skipping others)."""
        self.send(dgram)
        mid = dgram[2:4]
        while True:
            r = self.recv()
            if r[2:4] == mid and r[0] >> 4 & 3 in (2, 3):
                return r

    def close(self) -> None:
        self.s.close()


@pytest.fixture
def udp():
    socks: list[Udp] = []

    def make(port: int) -> Udp:
        socks.append(Udp(port))
        return socks[-1]

    yield make
    for s in socks:
        s.close()


def test_aiocoap_reads_link_format_and_state(server):
    from aiocoap import GET

    port = server()
    core, state = aiocoap_run(port, (GET, "/.well-known/core", b""), (GET, "/state", b""))
    assert str(core.code) == "2.05 Content" and core.opt.content_format == 40
    links = core.payload.decode().split(",")
    assert links[0] == '</state>;rt="lanterna.state";ct=50'
    assert "</big>;ct=0" in links and len(links) == 7
    assert state.opt.content_format == 50
    assert json.loads(state.payload) == {"v": 1, "level": 40, "mode": "schedule"}


def test_aiocoap_gets_a_large_resource_block_wise(server):
    from aiocoap import GET

    port = server()
    (r,) = aiocoap_run(port, (GET, "/big", b""))
    assert r.payload == BIG
    assert r.opt.block2 is not None  # it did arrive in blocks


@pytest.mark.parametrize("szx", [6, 5])
def test_aiocoap_puts_a_large_body_block_wise(server, szx):
    # szx 5: the node answers 2.31 asking for 512-byte blocks; aiocoap sends 1024.
    from aiocoap import GET, PUT

    port = server(szx=szx)
    up, calls = aiocoap_run(port, (PUT, "/upload", UPLOAD), (GET, "/calls", b""))
    assert str(up.code) == "2.04 Changed"
    assert up.payload.decode() == f"{hashlib.sha256(UPLOAD).hexdigest()} {len(UPLOAD)}"
    assert json.loads(calls.payload)["/upload"] == 1  # the handler saw the body once


def test_aiocoap_upload_over_the_limit_is_refused(server):
    from aiocoap import PUT

    port = server(max_body=2048)
    (r,) = aiocoap_run(port, (PUT, "/upload", UPLOAD))
    assert str(r.code) == "4.13 Request Entity Too Large"
    assert r.opt.size1 == 2048


def coap_client(*args: str) -> str:
    proc = subprocess.run(
        [COAP_CLIENT, "-B", "5", *args], capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_libcoap_reads_link_format_and_state(server):
    port = server()
    core = coap_client("-m", "get", f"coap://127.0.0.1:{port}/.well-known/core")
    assert '</state>;rt="lanterna.state";ct=50' in core
    state = coap_client("-m", "get", f"coap://127.0.0.1:{port}/state")
    assert json.loads(state) == {"v": 1, "level": 40, "mode": "schedule"}


def test_libcoap_gets_big_and_puts_a_body_in_64_byte_blocks(server, tmp_path):
    port = server()
    got = tmp_path / "big.bin"
    coap_client("-m", "get", "-o", str(got), f"coap://127.0.0.1:{port}/big")
    assert got.read_bytes() == BIG
    body = tmp_path / "body.bin"
    body.write_bytes(UPLOAD[:1500])
    out = coap_client("-m", "put", "-f", str(body), "-b", "64", f"coap://127.0.0.1:{port}/upload")
    assert out.strip() == f"{hashlib.sha256(UPLOAD[:1500]).hexdigest()} 1500"


def test_duplicate_con_gets_the_same_response_and_one_handler_call(server, udp):
    u = udp(server())
    dgram = request(0x7001, "dup", code=2, token=b"\x01\x02")
    first = u.ask(dgram)
    again = u.ask(dgram)
    assert again == first
    typ, code, mid, token, _, payload = parse(first)
    assert (typ, code, mid, token, payload) == (2, 0x44, 0x7001, b"\x01\x02", b"1")
    # A new message ID is a new request: processed.
    assert parse(u.ask(request(0x7002, "dup", code=2)))[5] == b"2"
    calls = json.loads(parse(u.ask(request(0x7003, "calls")))[5])
    assert calls["/dup"] == 2


def test_ping_is_answered_with_reset(server, udp):
    u = udp(server())
    rst = u.ask(bytes([0x40, 0, 0x12, 0x34]))  # empty CON: a CoAP ping (RFC 7252 sec. 4.3)
    assert rst == bytes([0x70, 0, 0x12, 0x34])


def mutate(rng: random.Random, base: bytes) -> bytes:
    d = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(d)) if d else 0
        if op == 0 and d:
            d[i] = rng.getrandbits(8)
        elif op == 1 and d:
            d[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            d = d[: rng.randrange(len(d) + 1)]
        elif op == 3:
            d[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
        elif op == 4 and d:
            d[i] = rng.choice((0x00, 0x0D, 0x0E, 0x0F, 0xD0, 0xE0, 0xF0, 0xFF))
        elif op == 5 and len(d) > 4:
            d[0] = 0x40 | (d[0] & 0x30) | rng.randint(9, 15)  # reserved token length
    return bytes(d)


def settle(u: Udp, mid: int) -> str:
    """Bring the server to a state the heap can be compared in: finish a two-block upload
    (no partial Block1 body left), refill the response cache with small answers, then
    read the heap. -> the /heap payload."""
    half = UPLOAD[:1024]
    for n, more in ((0, 8), (1, 0)):
        blk = bytes([n << 4 | more | 6])
        r = u.ask(request(mid + n, "upload", code=3, opts=((27, blk),), payload=half))
        assert parse(r)[1] in (0x5F, 0x44), r
    for k in range(10):
        assert parse(u.ask(request(mid + 2 + k)))[1] == 0x45
    return parse(u.ask(request(mid + 12, "heap")))[5].decode()


def test_fuzzed_datagrams_leave_the_server_answering_with_a_flat_heap(server, udp):
    port = server()
    # Control traffic from its own endpoint: a fuzzed message ID can never make one of
    # our requests look like a duplicate (duplicates are per endpoint, sec. 4.5).
    u, fuzz = udp(port), udp(port)
    before = int(settle(u, 0x100).split()[0])
    rng = random.Random(20261125)
    seeds = [
        request(0x2000, "state"),
        request(0x2001, ".well-known/core", typ=1),
        request(0x2002, "big", opts=((23, b"\x12"),)),
        request(0x2003, "upload", code=3, opts=((27, b"\x0e"),), payload=bytes(1024)),
        request(0x2004, "upload", code=3, opts=((27, b"\x1a"), (60, b"\x08\x00")), payload=b"x"),
        request(0x2005, "state", opts=((17, b"\x32"), (15, b"a=1"), (2048, b"e"))),
        request(0x2006, "dup", code=2, token=bytes(8), payload=b"{}"),
        bytes([0x40, 0, 0, 1]),
    ]
    sent = 0
    sync = 0xF000
    while sent < 10000:
        # A window of datagrams, then a ping whose RST says the server has read them all
        # (the socket buffer would drop a flood sent in one go).
        for _ in range(100):
            if rng.random() < 0.25:
                dgram = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
            else:
                dgram = mutate(rng, rng.choice(seeds))
            fuzz.send(dgram)
            sent += 1
        sync += 1
        assert u.ask(bytes([0x40, 0, sync >> 8, sync & 0xFF]))[0] == 0x70
    stats = json.loads(parse(u.ask(request(0x300, "stats")))[5])
    assert stats["received"] >= 10000 + 100
    assert stats["bad"] > 1000  # most of it was rejected, none of it stopped the server
    state = u.ask(request(0x301, "state"))
    assert json.loads(parse(state)[5])["level"] == 40
    after = int(settle(u, 0x400).split()[0])
    print(f"fuzz: sent={sent} stats={stats} heap before={before} after={after}")
    assert after - before < 1024, (before, after)

# Runs in MicroPython, started by tests/test_coap_server.py (not collected: no test_
# prefix): a lamp.net.coap server with test resources on 127.0.0.1:$COAP_PORT, until killed.
# /state   GET  small JSON
# /big     GET  3000 bytes (block-wise), a pattern the test recomputes
# /upload  PUT  stores nothing; answers "<sha256 hex> <length>" of the body it got
# /dup     POST counts its calls (duplicate detection must keep it at one per exchange)
# /calls   GET  JSON {path: handler calls}
# /heap    GET  "<gc.mem_alloc() after a collection> <the same before the server existed>"
# /stats   GET  JSON: the server's stats
import gc
import hashlib
import json
import os

from lamp.net import coap

BIG_LEN = 3000
RESOURCES = (
    ("/state", 'rt="lanterna.state";ct=50'),
    ("/big", "ct=0"),
    ("/upload", 'rt="test.upload"'),
    ("/dup", ""),
    ("/calls", "ct=50"),
    ("/heap", "ct=0"),
    ("/stats", "ct=50"),
)
PATHS = tuple(p for p, _ in RESOURCES)
calls = {}  # type: dict
base = [0]
server = []


def big():
    # The same bytes the CPython test builds: i * 7 mod 251, never a run of one value.
    return bytes((i * 7) % 251 for i in range(BIG_LEN))


def handler(method, path, payload, cf, accept, query):
    if path in PATHS:  # not fuzzed ones: this dict would grow, not the server
        calls[path] = calls.get(path, 0) + 1
    if path == "/state":
        if method != coap.GET:
            raise coap.CoapError(coap.METHOD_NOT_ALLOWED, "GET only")
        return coap.CONTENT, b'{"v":1,"level":40,"mode":"schedule"}', 50
    if path == "/big":
        return coap.CONTENT, big(), 0
    if path == "/upload":
        if method != coap.PUT:
            raise coap.CoapError(coap.METHOD_NOT_ALLOWED, "PUT only")
        h = hashlib.sha256(payload).digest()
        return coap.CHANGED, ("%s %d" % ("".join("%02x" % b for b in h), len(payload))), 0
    if path == "/dup":
        return coap.CHANGED, b"%d" % calls[path], 0
    if path == "/calls":
        return coap.CONTENT, json.dumps(calls).encode(), 50
    if path == "/heap":
        gc.collect()
        return coap.CONTENT, b"%d %d" % (gc.mem_alloc(), base[0]), 0
    if path == "/stats":
        return coap.CONTENT, json.dumps(server[0].stats).encode(), 50
    return coap.NOT_FOUND, b"", None


async def serve():
    gc.collect()
    base[0] = gc.mem_alloc()
    srv = coap.CoapServer(
        handler,
        RESOURCES,
        port=int(os.getenv("COAP_PORT")),
        host="127.0.0.1",
        szx=int(os.getenv("COAP_SZX") or "6"),
        max_body=int(os.getenv("COAP_MAX_BODY") or "8192"),
    )
    server.append(srv)
    await srv.run()

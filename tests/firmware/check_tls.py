# Runs in MicroPython, started as a process by tests/test_mqtt_tls.py and
# bench/bench_tls_heap.py (not collected: no test_ prefix). The node's network side
# (lamp.net.link.Net, its MQTT client and the verifying TLS context it makes from
# ca.der) against a real mosquitto TLS listener, configured as provisioning configures
# a pole. It prints what the CPython side waits for, one line each:
#   ATTEMPT <ticks ms>   a connection attempt starts (asyncio's clock: the one the
#                        backoff runs on)
#   STATE ...            the client's counters, on every change
#   EVENT <json>         an event the node publishes
# and the lamp.log lines of the node itself ("W mqtt ...", "I mqtt reconnect in N ms").
import asyncio
import gc
import os

from fw import sim_hal
from lamp import app, clock, unload


def _cfg():
    from lamp import config

    m = {
        "host": os.getenv("TLS_HOST") or "127.0.0.1",
        "port": int(os.getenv("TLS_PORT")),
        "user": os.getenv("TLS_USER"),
        "password": os.getenv("TLS_PASS"),
        "tls": True,
    }
    cfg = config.build(
        {"log_level": "info", "node": os.getenv("TLS_NODE"), "site": "greenwich", "mqtt": m}
    )
    del config
    unload("config")
    return cfg


def _net():
    clock.setup()  # the port's clock: the host's, valid, as on a sim board
    cfg = _cfg()
    node = app.Node(sim_hal(), cfg, root=os.getenv("TLS_ROOT") + "/")
    node.setup_site()
    from lamp.net.link import Net

    return Net(node, cfg)


def _state(c):
    s = c.stats
    u = c.untrusted
    return "STATE connected=%d connects=%d failures=%d untrusted=%d pending=%d" % (
        c.connected,
        s["connects"],
        s["failures"],
        u[0] if u else 0,
        c.pending,
    )


async def _node():
    net = _net()
    mq = net.mq
    handshake = mq._handshake

    async def counted():
        print("ATTEMPT %d" % asyncio.ticks())
        await handshake()

    mq._handshake = counted
    pub = net._pub

    def published(leaf, payload, retain=False):
        if leaf == "event":
            print("EVENT %s" % payload)
        pub(leaf, payload, retain)

    net._pub = published
    asyncio.create_task(net._mqtt(mq))
    last = None
    while True:
        line = _state(mq)
        if line != last:
            print(line)
            last = line
        await asyncio.sleep_ms(10)


def node():
    asyncio.run(_node())


async def _heap():
    # The heap a verified TLS connection costs the node: gc.mem_free() around the
    # verifying context (made once at boot: the CA parsed) and around the connection
    # (TCP socket, TLS session and its record buffers, CONNACK received), compared with
    # the same client connecting without TLS to the plain listener (HEAP_PLAIN_PORT).
    from lamp.net import mqtt  # noqa: F401 -- its code is the node's either way
    from lamp.net.link import tls_context

    root = os.getenv("TLS_ROOT") + "/"
    gc.collect()
    f0 = gc.mem_free()
    ctx = tls_context(root + "ca.der")
    gc.collect()
    f1 = gc.mem_free()
    # Alternating, three of each: the median of each kind (a collection can free a
    # few hundred bytes of earlier garbage inside one measurement).
    tls, plain = [], []
    for _ in range(3):
        plain.append(await _connected(False, int(os.getenv("HEAP_PLAIN_PORT"))))
        tls.append(await _connected(ctx, int(os.getenv("TLS_PORT"))))
    tls = sorted(tls)[1]
    plain = sorted(plain)[1]
    print("HEAP context=%d connection=%d plain_connection=%d" % (f0 - f1, tls, plain))


async def _connected(ssl, port):
    # -> bytes of heap the connected client holds beyond the same client unconnected.
    from lamp.net.mqtt import MQTTClient

    c = MQTTClient(
        os.getenv("TLS_NODE"),
        os.getenv("TLS_HOST") or "127.0.0.1",
        port,
        os.getenv("TLS_USER"),
        os.getenv("TLS_PASS"),
        ssl=ssl,
    )
    gc.collect()
    before = gc.mem_free()
    task = asyncio.create_task(c.run())
    for _ in range(1000):
        if c.connected:
            break
        await asyncio.sleep_ms(10)
    assert c.connected, "no connection"
    gc.collect()
    after = gc.mem_free()
    await c.disconnect()
    await task
    return before - after


def heap():
    asyncio.run(_heap())


async def _connect():
    # One connection, TLS (verified, ca.der) or plain as HEAP_MODE says, then a clean
    # DISCONNECT: the bench runs it under ever smaller heaps for the least that works.
    from lamp.net.link import tls_context

    if os.getenv("HEAP_MODE") == "tls":
        ssl, port = tls_context(os.getenv("TLS_ROOT") + "/ca.der"), int(os.getenv("TLS_PORT"))
    else:
        ssl, port = False, int(os.getenv("HEAP_PLAIN_PORT"))
    await _connected(ssl, port)
    print("CONNECTED")


def connect():
    asyncio.run(_connect())

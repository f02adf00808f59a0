# Runs in MicroPython, started as a process by tests/test_mqtt_client.py (not collected:
# no test_ prefix). A node's MQTT side against a real broker (or the test's fake one):
# settings from the environment, state changes printed as one line each so the CPython
# test waits for lines instead of sleeping, commands taken from the cmd topic.
import asyncio
import gc
import os


def _env(name, default):
    v = os.getenv(name)
    return int(v) if v else default


def _client(on_message=None, on_connect=None):
    from lamp.net.mqtt import MQTTClient

    node = os.getenv("MQTT_ID") or "n1"
    base = "lt/test/%s/" % node
    c = MQTTClient(
        node,
        "127.0.0.1",
        _env("MQTT_PORT", 1883),
        user=os.getenv("MQTT_USER"),
        password=os.getenv("MQTT_PASS"),
        keepalive=_env("MQTT_KEEPALIVE", 60),
        ssl=_tls(),
        will=(base + "status", b"offline", 1, True),
        outbox_count=_env("MQTT_OUTBOX", 64),
        max_payload=_env("MQTT_MAX_PAYLOAD", 8192),
        backoff_max_s=_env("MQTT_BACKOFF_S", 60),
        on_message=on_message,
        on_connect=on_connect,
    )
    c.retry_ms = _env("MQTT_RETRY_MS", c.retry_ms)
    return c, base


def _tls():
    # MQTT_TLS_CA: the broker's CA certificate (DER); the broker is verified against it.
    ca = os.getenv("MQTT_TLS_CA")
    if not ca:
        return False
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # the port's client default is CERT_NONE
    with open(ca, "rb") as f:
        ctx.load_verify_locations(cadata=f.read())
    return ctx


def _state(c):
    s = c.stats
    return "STATE connected=%d connects=%d failures=%d refused=%d sent=%d received=%d " % (
        c.connected,
        s["connects"],
        s["failures"],
        s["refused"],
        s["sent"],
        s["received"],
    ) + "skipped=%d pending=%d dropped=%d" % (s["skipped"], c.pending, c.dropped)


async def _node():
    # MQTT_INFLIGHT_N: once first connected (outbox empty), publish that many QoS 1
    # messages f0.. on tele (a broker that does not PUBACK leaves them in flight).
    # MQTT_OUTAGE_N: when the link first goes down, publish that many QoS 1 messages
    # m0.. on tele; once back and the outbox is empty, publish "dropped=N" on report.
    # MQTT_LATER_N: after that, that many more (l0.. on later), each once the outbox is
    # empty, then "dropped=N" on report2.
    inflight = _env("MQTT_INFLIGHT_N", 0)
    outage = _env("MQTT_OUTAGE_N", 0)
    later = _env("MQTT_LATER_N", 0)
    stop = asyncio.Event()
    c = None
    ups = [0]  # on_connect calls: the client is connected and has queued "online"

    def on_connect():
        ups[0] += 1
        c.publish(base + "status", b"online", qos=1, retain=True)

    def on_message(topic, payload):
        print("MSG %s %d %s" % (topic, len(payload), payload[:40].decode()))
        if payload.startswith(b"echo:"):
            c.publish(base + "ack", payload[5:], qos=1)
        elif payload == b"bye":
            stop.set()

    c, base = _client(on_message, on_connect)
    c.subscribe(base + "cmd", 1)
    task = asyncio.create_task(c.run())
    last = None
    phase = 0
    while not stop.is_set():
        line = _state(c)
        if line != last:
            print(line)
            last = line
        # Not on `connected` alone: it is set before the subscriptions and on_connect, so
        # a busy host could show an empty outbox before "online" is in it.
        if inflight and phase == 0 and ups[0] and c.connected and c.pending == 0:
            for i in range(inflight):
                c.publish(base + "tele", "f%d" % i, qos=1)
            print("INFLIGHT pending=%d" % c.pending)
            inflight = 0
        elif outage and phase == 0 and c.stats["connects"] == 1 and not c.connected:
            for i in range(outage):
                c.publish(base + "tele", "m%d" % i, qos=1)
            print("QUEUED dropped=%d pending=%d" % (c.dropped, c.pending))
            phase = 1
        elif phase == 1 and c.connected and c.pending == 0:
            c.publish(base + "report", "dropped=%d" % c.dropped, qos=1)
            print("REPORTED dropped=%d" % c.dropped)
            phase = 2
        elif phase == 2 and later and c.connected and c.pending == 0:
            n = _env("MQTT_LATER_N", 0) - later
            c.publish(base + "later", "l%d" % n, qos=1)
            later -= 1
            if not later:
                c.publish(base + "report2", "dropped=%d" % c.dropped, qos=1)
                print("LATER dropped=%d" % c.dropped)
        await asyncio.sleep_ms(10)
    await c.disconnect()
    await task  # run() returns after disconnect()
    print("STOPPED connected=%d" % c.connected)


def node():
    asyncio.run(_node())


async def _heap():
    # RAM of a connected client with one subscription and an empty outbox, measured
    # with gc.mem_alloc() around the import and around construction plus connection.
    from lamp import log  # noqa: F401 -- lamp.log and lamp.clock are the node's anyway

    # asyncio loads Event and Lock on first use: counted on their own.
    gc.collect()
    a0 = gc.mem_alloc()
    asyncio.Event, asyncio.Lock  # noqa: B018
    gc.collect()
    a = gc.mem_alloc()
    from lamp.net import mqtt

    gc.collect()
    b = gc.mem_alloc()
    c = mqtt.MQTTClient(
        "heap",
        "127.0.0.1",
        _env("MQTT_PORT", 1883),
        user=os.getenv("MQTT_USER"),
        password=os.getenv("MQTT_PASS"),
        will=("lt/test/heap/status", b"offline", 1, True),
    )
    c.subscribe("lt/test/heap/cmd")
    task = asyncio.create_task(c.run())
    c.publish("lt/test/heap/status", b"online", qos=1, retain=True)
    while not (c.connected and c.pending == 0):
        await asyncio.sleep_ms(10)
    gc.collect()
    d = gc.mem_alloc()
    print("HEAP asyncio=%d module=%d client=%d free=%d" % (a - a0, b - a, d - b, gc.mem_free()))
    await c.disconnect()
    await task


def heap():
    asyncio.run(_heap())

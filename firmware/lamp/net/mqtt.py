# MQTT 3.1.1 client on asyncio (OASIS mqtt-v3.1.1-os; "sec." below is that document).
# umqtt blocks and is not on the unix port; this one never stalls the dimmer: publish()
# only queues into a bounded outbox, run() keeps the link (connect, serve, reconnect with
# exponential backoff and full jitter). QoS 0 and 1 out, QoS 1 retried with DUP until
# PUBACK; QoS <= 1 in. The wire format lives in lamp.net.mqtt_packet.
# All timers here are real milliseconds, not lamp.clock's: the broker's keepalive runs in
# real time, and a warped sim clock must not hammer it with retries. They come from
# asyncio's own scheduler clock (ticks_ms underneath): lamp.clock stays the only importer
# of time, and asyncio.sleep_ms/wait_for_ms run on that same clock.
import asyncio
import os
import socket  # noqa: F401 -- for the type comment

from lamp import log
from lamp.net import aio
from lamp.net import mqtt_packet as pk

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_CONNECT_MS = const(10000)  # TCP (+TLS) and CONNACK
_IO_MS = const(10000)  # a write the broker does not take (full TCP window) is a dead link
_RETRY_MS = const(20000)  # a QoS 1 PUBLISH without PUBACK is sent again, DUP set
_BACKOFF_MS = const(1000)  # first reconnect window; doubles up to backoff_max_s
_STABLE_MS = const(30000)  # a link that lasted this long resets the backoff
_RBUF = const(256)  # socket reads
_TOPIC_ROOM = const(260)  # incoming PUBLISH: topic and packet id on top of max_payload
_DUP = const(0x08)
_PUBLISH = const(3)
_PUBACK = const(4)
_SUBACK = const(9)
_PINGRESP = const(13)
_ticks = getattr(asyncio, "ticks")  # not in the CPython-shaped stubs
_ticks_diff = getattr(asyncio, "ticks_diff")


class Refused(OSError):
    # The broker answered CONNECT with a non-zero CONNACK return code (sec. 3.2.2.3).
    pass


class MQTTClient:
    retry_ms = _RETRY_MS  # a class default: an instance pays for it only when set
    # lamp.net.netif's Event, set while the network has an address; None: always there.
    link = None  # type: asyncio.Event | None

    def __init__(
        self,
        client_id,
        host,
        port=1883,
        user=None,
        password=None,
        keepalive=60,
        ssl=False,
        will=None,
        outbox_count=64,
        outbox_bytes=16384,
        max_payload=8192,
        backoff_max_s=60,
        on_message=None,
        on_connect=None,
    ):
        self._host = host
        self._port = port
        # CONNECT is the same on every reconnect: built once (it holds the password,
        # which is never logged).
        self._hello = pk.connect(client_id, keepalive, user, password, will)
        self._ka = keepalive
        # False, or an ssl.SSLContext with CERT_REQUIRED and the broker's CA loaded
        # (lamp.net.link.tls_context), made once and kept for every reconnect.
        self._ssl = ssl
        # None, or [handshakes refused, why] since the last CONNACK: the broker's
        # certificate did not verify. The app reports it once the link is back.
        self.untrusted = None  # type: list | None
        self._max_n = outbox_count
        self._max_b = outbox_bytes
        self._max_payload = max_payload
        self._backoff_max = backoff_max_s * 1000
        self.on_message = on_message
        self.on_connect = on_connect
        self.connected = False
        self.dropped = 0
        self.stats = dict(connects=0, failures=0, refused=0, sent=0, received=0, skipped=0)
        self._subs = {}  # type: dict  # topic -> qos, re-sent after every reconnect
        self._unsent = []  # type: list  # topics to SUBSCRIBE on this connection
        self._subpid = {}  # type: dict  # packet id -> topic, until its SUBACK
        # The outbox, oldest first: [packet id, flags, topic, payload, ticks sent or None].
        # QoS 0 leaves when written; QoS 1 when its PUBACK comes (sec. 4.3.2).
        self._out = []  # type: list
        self._bytes = 0
        self._pid = 0
        self._tries = 0  # failures in a row: the backoff's exponent
        self._stop = False
        self._err = None  # type: Exception | None
        self._up = self._rx = self._tx = _ticks()  # CONNACK, last packet in, out
        self._pinging = False
        self._s = None  # type: socket.socket | None  # the connection (lamp.net.aio)
        self._task = None  # type: asyncio.Task | None  # the reader, one per connection
        self._wake = asyncio.Event()
        self._done = asyncio.Event()  # set while run() is not running
        self._done.set()
        self._lock = asyncio.Lock()
        self._parser = pk.Parser(max_payload + _TOPIC_ROOM)
        self._rbuf = memoryview(bytearray(_RBUF))
        self._ri = self._rn = 0
        # [0:7] PUBLISH fixed header, [8:10] its packet id (the writer task's);
        # [10:14] PUBACK (the reader task's).
        self._head = bytearray(14)

    @property
    def pending(self):
        # Messages in the outbox: not yet written, or QoS 1 awaiting PUBACK.
        return len(self._out)

    def subscribe(self, topic, qos=1):
        self._subs[topic] = min(qos, 1)  # QoS 2 is not implemented: ask for 1
        if self.connected and topic not in self._unsent:
            self._unsent.append(topic)
            self._wake.set()

    def publish(self, topic, payload, qos=0, retain=False):
        # Queue a message; False if it can never fit the outbox. Full: the oldest goes.
        if qos not in (0, 1):
            raise ValueError("qos %d" % qos)
        if "#" in topic or "+" in topic:  # no wildcards in a Topic Name (sec. 4.7.1)
            raise ValueError("wildcard in topic")
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        if n > self._max_b or n > pk.MAX_LENGTH - 4 - len(topic):
            log.warn("mqtt", "message of %d bytes refused (outbox %d bytes)", n, self._max_b)
            return False
        out = self._out
        while out and (len(out) >= self._max_n or self._bytes + n > self._max_b):
            self._bytes -= len(out.pop(0)[3])
            self.dropped += 1
        out.append([0, qos << 1 | (1 if retain else 0), topic.encode(), payload, None])
        self._bytes += n
        if self.connected:
            self._wake.set()
        return True

    async def run(self):
        self._stop = False
        self._done.clear()
        try:
            while not self._stop:
                try:
                    await asyncio.wait_for_ms(self._handshake(), _CONNECT_MS)
                    await self._serve()
                except Exception as e:  # a broken link or broker must never end run()
                    # Only a link that held resets the backoff: a broker that accepts
                    # and drops at once gets the same growing wait as a refusing one.
                    up = _ticks_diff(_ticks(), self._up)
                    if self.connected and up >= _STABLE_MS:
                        self._tries = 0
                    self._tries += 1
                    # counted together, so no snapshot of stats sees one without the other
                    self.stats["failures"] += 1
                    if isinstance(e, Refused):
                        self.stats["refused"] += 1
                    if not self._stop:
                        log.warn("mqtt", "%s:%d: %s", self._host, self._port, _why(e))
                finally:
                    await self._close()
                if not self._stop:
                    await self._backoff()
        finally:
            await self._close()
            self._done.set()

    async def disconnect(self):
        # A clean DISCONNECT (sec. 3.14): the broker discards the Will. Ends run().
        self._stop = True
        self._wake.set()
        await self._done.wait()

    async def _backoff(self):
        # Exponential backoff with full jitter: a random wait in [0, min(max, 1 s * 2^n)),
        # so a district of nodes coming back after a broker outage does not reconnect at
        # one instant. os.urandom: no seed to share between nodes booted together.
        cap = min(self._backoff_max, _BACKOFF_MS << min(self._tries - 1, 16))
        r = os.urandom(3)
        ms = (r[0] << 16 | r[1] << 8 | r[2]) % (cap + 1)
        log.info("mqtt", "reconnect in %d ms", ms)
        self._wake.clear()
        try:
            await asyncio.wait_for_ms(self._wake.wait(), ms)  # disconnect() cuts it short
        except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin one
            pass

    def link_changed(self):
        # lamp.net.netif: the network went down (the socket goes now, not at keepalive)
        # or up (the backoff ends: the broker is tried at once).
        if self.connected and self.link is not None and not self.link.is_set():
            self._err = OSError("network link down")
        self._wake.set()

    async def _handshake(self):
        if self.link is not None and not self.link.is_set():
            raise OSError("no network link")  # no socket opened without an address
        self._parser.reset()
        self._ri = self._rn = 0
        self._err = None
        self._unsent = list(self._subs)
        self._subpid = {}
        self._s = await aio.connect(self._host, self._port, self._ssl)
        try:
            await self._send(self._hello)  # a TLS handshake runs inside this first write
        except ValueError as e:
            # modtls_mbedtls raises ValueError (not OSError) for a certificate it could
            # not verify: signed by another CA, for another name, out of its dates.
            u = self.untrusted
            self.untrusted = [u[0] + 1 if u else 1, str(e).strip().replace("\n", "; ")]
            raise
        p = await self._packet()
        if p.kind != 0x20:  # the first packet from the broker is CONNACK (sec. 3.2)
            raise ValueError("packet type %d before CONNACK" % (p.kind >> 4))
        rc = p.body[1]
        if rc:
            why = pk.REFUSED[rc - 1] if rc <= 5 else "code"
            raise Refused("%s (CONNACK %d)" % (why, rc))
        self.connected = True
        self.stats["connects"] += 1
        self._up = self._rx = self._tx = _ticks()
        self._pinging = False
        # Clean Session (sec. 3.1.2.4): the broker forgot every QoS 1 PUBLISH we sent
        # and never saw acknowledged; send them again, DUP set (sec. 3.3.1.1, 4.4).
        for m in self._out:
            m[4] = None
        log.info("mqtt", "connected to %s:%d", self._host, self._port)

    async def _serve(self):
        self._task = asyncio.create_task(self._reader())
        while self._unsent:
            await self._subscribe(self._unsent.pop(0))
        if self.on_connect is not None:
            try:
                self.on_connect()
            except Exception as e:  # the app's bug must not drop the link
                log.error("mqtt", "on_connect: %s", _why(e))
        await self._writer()

    async def _writer(self):
        # The one task that writes PUBLISH, SUBSCRIBE and PINGREQ; the reader writes only
        # PUBACK. It also owns keepalive (sec. 3.1.2.10): PINGREQ when idle for half the
        # interval, and a broker silent for 1.5 intervals is gone (sec. 3.1.2.10, 3.12.4).
        ka = self._ka * 1000
        wake = self._wake
        while True:
            wake.clear()
            if self._err is not None:
                raise self._err
            if self._stop:
                await self._send(pk.DISCONNECT)
                return
            if self._unsent:
                await self._subscribe(self._unsent.pop(0))
                continue
            now = _ticks()
            m = self._due(now)
            if m is not None:
                await self._publish(m)
                await asyncio.sleep_ms(0)  # a long outbox must not starve the dimmer
                continue
            wait = 60000
            if ka:
                rx = _ticks_diff(now, self._rx)
                tx = _ticks_diff(now, self._tx)
                if rx >= ka * 3 // 2:
                    raise OSError("broker silent for %d ms (keepalive %d s)" % (rx, self._ka))
                if tx >= ka // 2 or (rx >= ka // 2 and not self._pinging):
                    self._pinging = True
                    await self._send(pk.PINGREQ)
                    continue
                wait = min(ka * 3 // 2 - rx, ka // 2 - tx)
                if not self._pinging:
                    wait = min(wait, ka // 2 - rx)
            for m in self._out:
                if m[4] is not None:
                    wait = min(wait, self.retry_ms - _ticks_diff(now, m[4]))
            try:
                await asyncio.wait_for_ms(wake.wait(), max(wait, 1))
            except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin one
                pass

    def _due(self, now):
        # The oldest message never written on this link, or whose PUBACK is overdue.
        for m in self._out:
            if m[4] is None or _ticks_diff(now, m[4]) >= self.retry_ms:
                return m
        return None

    async def _publish(self, m):
        flags, topic, payload = m[1], m[2], m[3]
        b = self._head
        n = pk.publish_head(b, flags, len(topic), len(payload))
        if flags & 0x06:
            if not m[0]:
                m[0] = self._next_pid()
            b[8] = m[0] >> 8
            b[9] = m[0] & 0xFF
            # Marked in flight before the write: _send may yield (drain), and a PUBACK
            # read meanwhile must find the message waiting for it, not one never sent.
            m[1] = flags | _DUP  # any later copy is a re-delivery (sec. 3.3.1.1)
            m[4] = _ticks()
            await self._send(memoryview(b)[:n], topic, memoryview(b)[8:10], payload)
        else:
            await self._send(memoryview(b)[:n], topic, payload)
            self._forget(m)
            self.stats["sent"] += 1

    async def _subscribe(self, topic):
        pid = self._next_pid()
        self._subpid[pid] = topic
        await self._send(pk.subscribe(pid, topic, self._subs.get(topic, 1)))

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1  # 1..65535, never 0 (sec. 2.3.1)
        return self._pid

    def _forget(self, m):
        out = self._out
        for i in range(len(out)):
            if out[i] is m:
                del out[i]
                self._bytes -= len(m[3])
                return

    async def _send(self, a, b=None, c=None, d=None):
        # One packet, written whole under the lock so the two tasks never interleave.
        async with self._lock:
            s = self._s
            if s is None:
                raise OSError("not connected")
            for part in (a, b, c, d):
                if part is not None:
                    await aio.write(s, part, _IO_MS)
        self._tx = _ticks()

    async def _packet(self):
        # The next whole packet from the broker (the parser, valid until the next call).
        p = self._parser
        while True:
            if self._ri < self._rn:
                self._ri = p.feed(self._rbuf, self._ri, self._rn)
                if p.ready:
                    return p
                continue
            s = self._s
            if s is None:
                raise OSError("not connected")
            await aio.readable(s)
            n = s.readinto(self._rbuf)
            if n is None:  # TLS: a record not complete yet
                continue
            if n == 0:
                raise OSError("closed by the broker")
            self._ri, self._rn = 0, n

    async def _reader(self):
        try:
            while True:
                p = await self._packet()
                self._rx = _ticks()
                t = p.kind >> 4
                b = p.body
                if t == _PUBLISH:
                    await self._incoming(p)
                elif t == _PUBACK:
                    pid = b[0] << 8 | b[1]
                    for m in self._out:
                        if m[0] == pid and m[4] is not None:
                            self._forget(m)
                            self.stats["sent"] += 1
                            break
                elif t == _SUBACK:
                    topic = self._subpid.pop(b[0] << 8 | b[1], None)
                    if b[2] & 0x80:  # 0x80: failure (sec. 3.9.3)
                        log.warn("mqtt", "subscription to %s refused", topic)
                elif t == _PINGRESP:
                    self._pinging = False
                else:  # a second CONNACK (sec. 3.2)
                    raise ValueError("unexpected packet type %d" % t)
        except Exception as e:
            self._err = e
            self._wake.set()

    async def _incoming(self, p):
        # PUBLISH from the broker (sec. 3.3); QoS 1 is acknowledged after delivery.
        end, pid, off = p.publish()
        b = p.body
        n = p.length
        if n > len(b) or n - off > self._max_payload:
            # Read and discarded by the parser: acknowledged, so the broker does not
            # send it again, but never delivered.
            self.stats["skipped"] += 1
            log.warn(
                "mqtt", "skipped a %d-byte payload (max_payload %d)", n - off, self._max_payload
            )
        else:
            self.stats["received"] += 1
            mv = memoryview(b)  # slices without copies: one copy of the payload, not two
            topic = str(mv[2:end], "utf-8")
            payload = bytes(mv[off:n])
            del mv
            p.body = b = None  # the payload's copy is the only one held during the call
            if self.on_message is not None:
                try:
                    self.on_message(topic, payload)
                except Exception as e:  # the app's bug must not drop the link
                    log.error("mqtt", "on_message: %s", _why(e))
        if pid:
            await self._send(pk.puback(memoryview(self._head)[10:], pid))

    async def _close(self):
        self.connected = False
        t, self._task = self._task, None
        if t is not None:
            t.cancel()
        s, self._s = self._s, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


def _why(e):
    # One log line: the port's TLS errors put their text after a newline.
    return ("%s %s" % (type(e).__name__, e)).replace("\n", " ")

# Delivery of an update over MQTT (docs/ota.md, "Delivery"): offered a bundle by the
# signed `ota` command, the node pulls it one chunk at a time ({base}ota/req, answered on
# {base}ota/data) into lamp.ota's Install, then resets into the new slot on trial.
# Pulled, not pushed: the node asks for a chunk only when the last one is on flash, so a
# slow flash never piles chunks up in a 110 KB heap, and a drop costs nothing but the
# chunk in flight: the partial download stays on flash and the next offer resumes it at
# the byte (lamp.ota). This module, lamp.ota and lamp.sig are loaded for one download and
# dropped after it; the lamp is never touched.
import asyncio

from lamp import VERSION, log, unload
from lamp import numbers as N

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_WAIT_MS = const(10000)  # per chunk, real time: a warped sim clock must not hurry it
_TRIES = const(4)  # one request and 3 re-requests of an offset, then result 4
_DRAIN_MS = const(5000)  # the last events' chance to leave before the reset
_TAG = "ota"
# LwM2M Object 5 (lamp.ota has them all): states and the results this module gives itself
_IDLE = const(0)
_DOWNLOADING = const(1)
_DOWNLOADED = const(2)
_UPDATING = const(3)
_CONN_LOST = const(4)
_INTEGRITY = const(5)
_UNSUPPORTED = const(6)
_FAILED = const(8)
_DEFERRED = const(11)


def _ver(s):
    return [int(x) for x in s.split(".")]  # lamp.commands checked it is X.Y.Z


def offer(node, args):
    # The `ota` command (lamp.control, arguments checked by lamp.commands). -> the ack's
    # result, or "<LwM2M result>: <detail>" for a refusal that is known now.
    got = _offer(node, args)
    if node.net.fetch is None:  # no download started: nothing of it stays in RAM
        _unload()
    return got


def _offer(node, args):
    net = node.net
    v, sha = args["version"], args["bundle"]
    f = net.fetch
    if f is not None:  # one download at a time; the same offer again is answered
        if f.bundle == sha:
            return {"state": _DOWNLOADING, "offset": f.inst.offset}
        return "%d: downloading %s: one update at a time" % (_DEFERRED, f.version)
    key = node.cfg["ota_key"]
    if key is None:
        return "%d: no ota_key on this node" % _UNSUPPORTED
    from lamp import slots

    st = slots.state(node.root)
    if st["trial"]:  # before the version: a re-offer of the version on trial waits too
        return "%d: slot %s is on trial: confirm it first" % (_DEFERRED, st["slot"])
    if v == VERSION:  # done already (a controller restarted mid-rollout offers it again)
        return {"state": _IDLE, "result": 1, "version": v}
    if _ver(v) < _ver(VERSION):
        return "%d: version %s, running %s: downgrade" % (_UNSUPPORTED, v, VERSION)
    from binascii import unhexlify

    from lamp.ota import Install, OtaError

    try:
        inst = Install(node.root, unhexlify(key), VERSION, node.hal.board["name"], sha)
    except OtaError as e:
        return "%d: %s" % (e.result, e.detail)
    net.fetch = Fetch(node, inst, args)
    asyncio.create_task(net.fetch.run())
    return {"state": _DOWNLOADING, "offset": inst.offset}


def _unload():
    for name in ("ota", "sig", "slots", "ota_fetch"):
        unload(name)


class Fetch:
    def __init__(self, node, inst, args):
        self.node = node
        self.inst = inst
        self.bundle = args["bundle"]
        self.version = args["version"]
        self.size = args["size"]
        self.chunk = args["chunk"]
        self._got = None  # type: bytes | None  # the chunk awaited, once it is in
        self._in = asyncio.Event()

    def data(self, payload):
        # {base}ota/data (lamp.net): kept only if it is the chunk awaited. A late answer
        # to an earlier request, a QoS 1 duplicate or a stray is dropped.
        if self._got is None and len(payload) > 4:
            if int.from_bytes(payload[:4], "big") == self.inst.offset:
                self._got = payload
                self._in.set()

    def _tell(self, state, result, progress=None, detail=None):
        p = {"state": state, "result": result, "version": self.version}
        if progress is not None:
            p["progress"] = progress
        if detail is not None:
            p["detail"] = detail
        self.node._told("ota", p)

    async def _next(self):
        # -> the next chunk (its 4-byte offset first), or None once every try timed out
        off = self.inst.offset
        req = '{"v":1,"bundle":"%s","offset":%d,"n":%d}' % (
            self.bundle,
            off,
            min(self.chunk, self.size - off),
        )
        net = self.node.net
        for _ in range(_TRIES):
            self._got = None
            self._in.clear()
            net.mq.publish(net.base + N.OTA_REQ, req, 1)
            try:
                await asyncio.wait_for_ms(self._in.wait(), _WAIT_MS)
                return self._got
            except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin one
                log.warn(_TAG, "no chunk at %d", off)
        return None

    async def run(self):
        from lamp.ota import OtaError

        inst, size, node = self.inst, self.size, self.node
        try:
            p = inst.offset * 100 // size
            self._tell(_DOWNLOADING, 0, p)
            step = p // 10 * 10 + 10
            while inst.offset < size:
                got = await self._next()
                if got is None:
                    self._close()
                    why = "connection lost at offset %d" % inst.offset
                    self._tell(_IDLE, _CONN_LOST, None, why)
                    return
                inst.feed(memoryview(got)[4:])
                got = self._got = None
                if inst.total is not None:  # the manifest is in: the offer must match it
                    self._matches(inst, OtaError)
                p = inst.offset * 100 // size
                if p >= step:
                    self._tell(_DOWNLOADING, 0, p)
                    step = p // 10 * 10 + 10
            inst.finish()
            self._tell(_DOWNLOADED, 0, 100)
            self._tell(_UPDATING, 0)
            log.warn(_TAG, "%s installed: reset into it, on trial", self.version)
            await self._drain()
            node.save_lamp()
            node.energy.save()
            node.hal.reset()
        except OtaError as e:
            self._tell(_IDLE, e.result, None, e.detail)
        except Exception as e:  # noqa: BLE001 -- a fault here must not leave the node stuck
            self._close()
            self._tell(_IDLE, _FAILED, None, "%s: %s" % (type(e).__name__, e))
        finally:
            node.net.fetch = None
            _unload()

    def _matches(self, inst, OtaError):
        why = None
        if inst.total != self.size:
            why = "size %d offered, the bundle is %d" % (self.size, inst.total)
        elif inst.version != self.version:
            why = "offered as %s, the bundle is %s" % (self.version, inst.version)
        if why:
            inst.cancel()  # dropped: nothing of it stays on flash
            raise OtaError(_UNSUPPORTED if inst.total == self.size else _INTEGRITY, why)

    def _close(self):
        # The download pauses with its partial file closed (on littlefs, committed) so the
        # next offer's Install resumes it from flash; lamp.ota keeps that file open
        # between feed() calls.
        f = self.inst._f
        if f is not None:
            f.close()
            self.inst._f = None

    async def _drain(self):
        mq = self.node.net.mq
        t = 0
        while mq.pending and t < _DRAIN_MS:
            await asyncio.sleep_ms(100)
            t += 100

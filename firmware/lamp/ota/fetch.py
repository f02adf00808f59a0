# Delivery of an update over MQTT (docs/ota.md, "Delivery"): offered a bundle by the
# signed `ota` command, the node pulls it one chunk at a time ({base}ota/req, answered on
# {base}ota/data) into lamp.ota.install's Install, then resets into the new slot on trial.
# Pulled, not pushed: the node asks for a chunk only when the last one is on flash, so a
# slow flash never piles chunks up in a 110 KB heap, and a drop costs nothing but the
# chunk in flight: the partial download stays on flash and the next offer resumes it at
# the byte (lamp.ota.install). The lamp.ota package is loaded for one download and
# dropped after it; the lamp is never touched.
import asyncio

from lamp import VERSION, log, unload
from lamp import numbers as N
from lamp.numbers import IDLE, R_FAILED, R_SUCCESS
from lamp.ota import (
    DOWNLOADED,
    DOWNLOADING,
    R_CONN_LOST,
    R_DEFERRED,
    R_INTEGRITY,
    R_UNSUPPORTED,
    UPDATING,
)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_WAIT_MS = const(10000)  # per chunk, real time: a warped sim clock must not hurry it
_TRIES = const(4)  # one request and 3 re-requests of an offset, then result 4
_DRAIN_MS = const(5000)  # the last events' chance to leave before the reset
_TAG = "ota"


def _ver(s):
    return [int(x) for x in s.split(".")]  # lamp.cmd.args checked it is X.Y.Z


def offer(node, args):
    # The `ota` command (lamp.cmd.control, arguments checked by lamp.cmd.args). -> the
    # ack's result, or (LwM2M Update Result, detail) for a refusal that is known now.
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
            return {"state": DOWNLOADING, "offset": f.inst.offset}
        return R_DEFERRED, "downloading %s: one update at a time" % f.version
    key = node.cfg["ota_key"]
    if key is None:
        return R_UNSUPPORTED, "no ota_key on this node"
    from lamp.ota import slots

    st = slots.state(node.root)
    if st["trial"]:  # before the version: a re-offer of the version on trial waits too
        return R_DEFERRED, "slot %s is on trial: confirm it first" % st["slot"]
    if v == VERSION:  # done already (a controller restarted mid-rollout offers it again)
        return {"state": IDLE, "result": R_SUCCESS, "version": v}
    if _ver(v) < _ver(VERSION):
        return R_UNSUPPORTED, "version %s, running %s: downgrade" % (v, VERSION)
    from binascii import unhexlify

    from lamp.ota.install import Install, OtaError

    try:
        inst = Install(node.root, unhexlify(key), VERSION, node.hal.board["name"], sha)
    except OtaError as e:
        return e.result, e.detail
    net.fetch = Fetch(node, inst, args)
    asyncio.create_task(net.fetch.run())
    return {"state": DOWNLOADING, "offset": inst.offset}


def request(bundle, offset, n):
    # The ota/req payload (schema ota_req): n bytes of the bundle from offset, please.
    return '{"v":%d,"bundle":"%s","offset":%d,"n":%d}' % (N.SCHEMA, bundle, offset, n)


def _unload():
    unload("ota")  # the whole package: fetch, install, tar, manifest, sig, slots


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
        # {base}ota/data (lamp.net.link): kept only if it is the chunk awaited. A late answer
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
        self.node._told(N.EV_OTA, p)

    async def _next(self):
        # -> the next chunk (its 4-byte offset first), or None once every try timed out
        off = self.inst.offset
        req = request(self.bundle, off, min(self.chunk, self.size - off))
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
        from lamp.ota.install import OtaError

        inst, size, node = self.inst, self.size, self.node
        try:
            p = inst.offset * 100 // size
            self._tell(DOWNLOADING, 0, p)
            step = p // 10 * 10 + 10
            while inst.offset < size:
                got = await self._next()
                if got is None:
                    self._close()
                    why = "connection lost at offset %d" % inst.offset
                    self._tell(IDLE, R_CONN_LOST, None, why)
                    return
                inst.feed(memoryview(got)[4:])
                got = self._got = None
                if inst.total is not None:  # the manifest is in: the offer must match it
                    self._matches(inst, OtaError)
                p = inst.offset * 100 // size
                if p >= step:
                    self._tell(DOWNLOADING, 0, p)
                    step = p // 10 * 10 + 10
            inst.finish()
            self._tell(DOWNLOADED, 0, 100)
            self._tell(UPDATING, 0)
            log.warn(_TAG, "%s installed: reset into it, on trial", self.version)
            await self._drain()
            node.save_lamp()
            node.energy.save()
            node.hal.reset()
        except OtaError as e:
            self._tell(IDLE, e.result, None, e.detail)
        except Exception as e:  # noqa: BLE001 -- a fault here must not leave the node stuck
            self._close()
            self._tell(IDLE, R_FAILED, None, "%s: %s" % (type(e).__name__, e))
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
            raise OtaError(R_UNSUPPORTED if inst.total == self.size else R_INTEGRITY, why)

    def _close(self):
        # The download pauses with its partial file closed (on littlefs, committed) so the
        # next offer's Install resumes it from flash; lamp.ota.install keeps that file open
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

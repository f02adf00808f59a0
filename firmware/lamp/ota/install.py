# Over-the-air update on the node (issue 7, docs/ota.md): a signed bundle streams into the
# inactive application slot, is checked member by member, and only then becomes the slot
# boot.py starts, on trial. Nothing here ever writes into the running slot, and ota.json
# (boot.py's whole view) is only ever replaced whole by rename, so a power cut at any byte
# leaves a node that boots a complete, verified slot.
#
# On flash (paths under the node's root, as lamp.app's Node.root):
#   ota.json                 the boot state; see state()
#   slots/a/, slots/b/       main.py, lanterna.romfs, manifest.json (complete iff it exists)
#   slots/X/.ota-manifest    the verified manifest of the download going into X: its
#                            presence IS the resume record. Finished payload files carry
#                            their final name, the one being written <path>.part; the
#                            resume offset is rebuilt from those sizes (littlefs keeps a
#                            file's last synced size across a power cut), never trusted
#                            from a counter. finish() copies it to manifest.json, switches,
#                            then removes it.
import hashlib
import json
import os
from binascii import hexlify, unhexlify

from lamp import write_json_atomic
from lamp.numbers import IDLE, R_FAILED, R_SUCCESS  # noqa: F401 -- re-exported
from lamp.ota import (  # noqa: F401 -- re-exported
    DOWNLOADED,
    DOWNLOADING,
    R_CANCELLED,
    R_CONN_LOST,
    R_DEFERRED,
    R_INITIAL,
    R_INTEGRITY,
    R_NO_FLASH,
    R_NO_RAM,
    R_UNSUPPORTED,
    UPDATING,
    OtaError,
)
from lamp.ota import manifest as _manifest
from lamp.ota.manifest import version
from lamp.ota.sig import KEY_BYTES, key_id, verify
from lamp.ota.slots import (  # noqa: F401 -- state, confirm, fail: re-exported
    MANIFEST,
    STATE_FILE,
    _boot_state,
    _put,
    confirm,
    fail,
    slot_version,
    state,
)
from lamp.ota.tar import BLOCK, header, pad, text, total

TYPE_CHECKING = False
if TYPE_CHECKING:  # type comments only: MicroPython has no typing module
    from typing import Any  # noqa: F401 -- named in type comments

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_PENDING = ".ota-manifest"
_IMAGE = "lanterna.romfs"
_FILES_SLACK = const(64)  # a block per file of the files form (55 .mpy) and directories
_PART = ".part"
_NAMES = (b"manifest.json", b"manifest.sig", b"slot/main.py", b"slot/lanterna.romfs")
_AFTER = "not a bundle: data after the end-of-archive marker"
_CUT_SHORT = "truncated: the end-of-archive marker is cut short"
_MANIFEST_MAX = const(2048)  # held in RAM to verify and parse; a real one is ~450 bytes
_SYNC = const(8192)  # flush (littlefs: commit) the file being written this often
_SPARE_BLOCKS = const(4)  # manifest, ota.json.tmp, directory metadata
_HEAD = const(0)
_DATA = const(1)
_PAD = const(2)
_END = const(3)
_DONE = const(4)


def _no(result, fmt, *args):
    return OtaError(result, fmt % args if args else fmt)


def flash_free(root):
    # -> (block size, free blocks) of the filesystem holding root; a module function so a
    # test can stand in a small flash.
    s = os.statvfs(root or ".")
    return s[0], s[4]


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _clear(d):
    # Empty a slot directory: manifest.json first (the slot stops being complete), then the
    # resume record (the download stops being resumable), then the rest, the files form's
    # directories (lamp/...) with it.
    _rm(d + MANIFEST)
    _rm(d + _PENDING)
    _empty(d)


def _empty(d):
    try:
        for e in list(os.ilistdir(d[:-1])):
            if e[1] == 0x4000:  # a directory
                _empty(d + e[0] + "/")
                try:
                    os.rmdir(d + e[0])
                except OSError:
                    pass
            else:
                _rm(d + e[0])
    except OSError:
        pass


class Install:
    # One bundle into the inactive slot. feed() the bundle's bytes from .offset on, in any
    # chunk sizes; finish() after the end-of-archive switches to it (on trial). Any OtaError
    # from feed()/finish() is final: the download is dropped and the object is dead.
    # bundle: the sha256 (hex) of the manifest.json the sender is about to send; a
    # download in progress on flash of another bundle is then discarded (None: resume
    # whatever is there). Raises OtaError(R_DEFERRED) while the running slot is on trial.
    def __init__(self, root, key_n, running_version, board, bundle=None):
        st = state(root)
        if st["trial"]:
            raise _no(R_DEFERRED, "slot %s is on trial: confirm it first", st["slot"])
        self.root = root
        self.running = st["slot"]
        self.slot = "b" if self.running == "a" else "a"
        _rm("%sslots/%s/%s" % (root, self.running, _PENDING))  # a cut at finish()'s end
        self._dir = "%sslots/%s/" % (root, self.slot)
        self._n = key_n
        self._running_version = running_version
        # The slot forms (docs/ota.md, "Slot forms"): the image always, and the files when
        # the running slot has them (provisioning chose them for a firmware without ROMFS).
        self._files = _size("%sslots/%s/main.mpy" % (root, self.running)) >= 0
        self._board = board
        self._want = bundle
        self.bundle = None  # type: Any  # sha256 hex of the manifest once it is in (or on flash)
        self.version = None  # type: Any
        self.total = None  # type: Any  # the bundle's size in bytes, once the manifest is known
        self.offset = 0
        self.state = IDLE
        self._err = None  # type: Any
        self._m = None  # type: Any
        self._mb = None  # type: Any
        self._mine = False  # the slot directory holds this download's files
        self._hb = bytearray(BLOCK)
        self._hn = 0
        self._st = _HEAD
        self._k = 0  # member index: 0 manifest, 1 sig, 2.. payload files
        self._left = 0
        self._pad = 0
        self._buf = None  # type: Any
        self._f = None  # type: Any
        self._h = None  # type: Any
        self._unsynced = 0
        self._resume()

    # -- resume from flash ----------------------------------------------------------------

    def _resume(self):
        d = self._dir
        try:
            with open(d + _PENDING, "rb") as f:
                mb = f.read()
        except OSError:
            return
        digest = hexlify(hashlib.sha256(mb).digest()).decode()
        try:
            m = json.loads(mb)
            files = m["files"]
        except (ValueError, KeyError, TypeError):
            m = None
        if m is None or (self._want is not None and self._want != digest):
            _clear(d)  # another bundle (or an unreadable record): start afresh
            return
        self._m, self._mine, self.bundle, self.version = m, True, digest, m["version"]
        self.total = total(len(mb), files)
        off = 3 * BLOCK + len(mb) + pad(len(mb))  # past the manifest and sig members
        self.state = DOWNLOADING
        for i in range(len(files)):
            f = files[i]
            self._k = 2 + i
            path = d + f["path"]
            if _size(path) >= 0:  # renamed only once verified
                off += BLOCK + f["size"] + pad(f["size"])
                continue
            have = _size(path + _PART)
            if have < 0:  # its header had not come: resume at it
                break
            self._h = hashlib.sha256()
            if have <= f["size"]:
                have = self._rehash(path + _PART, have)
            if have == f["size"]:  # cut between its last byte and the rename
                if self._h.digest() == unhexlify(f["sha256"]):
                    os.rename(path + _PART, path)
                    off += BLOCK + f["size"] + pad(f["size"])
                    continue
                have = -1
            if have < 0 or have > f["size"]:  # unreadable, overlong, spoilt: this member again
                have = 0
                self._h = hashlib.sha256()
                _rm(path + _PART)
            self._f = open(path + _PART, "ab")
            self._st, self._left, self._pad = _DATA, f["size"] - have, pad(f["size"])
            self.offset = off + BLOCK + have
            return
        else:
            self._k = 4  # every file is in: the end-of-archive marker is next
        self.offset = off

    def _rehash(self, path, have):
        # Rebuild the sha256 state of a partial file from flash (hashlib has no copy()).
        buf, got = self._hb, 0
        try:
            with open(path, "rb") as f:
                while got < have:
                    n = f.readinto(buf)
                    if not n:
                        return -1
                    self._h.update(memoryview(buf)[: min(n, have - got)])
                    got += n
        except OSError:
            return -1
        return have

    # -- the stream -----------------------------------------------------------------------

    def feed(self, chunk):
        if self._err:
            raise self._err
        mv = memoryview(chunk)
        i, n = 0, len(mv)
        try:
            while i < n:
                k = n - i
                st = self._st
                if st == _HEAD:
                    k = min(k, BLOCK - self._hn)
                    self._hb[self._hn : self._hn + k] = mv[i : i + k]
                    self._hn += k
                    if self._hn == BLOCK:
                        self._hn = 0
                        self._header()
                elif st == _DATA:
                    k = min(k, self._left)
                    self._data(mv[i : i + k])
                    self._left -= k
                    if not self._left:
                        self._member_end()
                elif st == _PAD:
                    k = min(k, self._left)
                    self._left -= k
                    if not self._left:
                        self._st = _HEAD
                else:  # _END (second zero block), _DONE (zeros may trail, as tar allows)
                    if st == _END:
                        k = min(k, self._left)
                    if any(mv[i : i + k]):
                        raise _no(R_UNSUPPORTED, _AFTER if st == _DONE else _CUT_SHORT)
                    if st == _END:
                        self._left -= k
                        if not self._left:
                            self._st = _DONE
                            self.state = DOWNLOADED
                i += k
                self.offset += k
        except OtaError as e:
            raise self._abort(e)
        except MemoryError:
            raise self._abort(OtaError(R_NO_RAM, "out of RAM at byte %d" % self.offset))
        except OSError as e:
            raise self._abort(self._io_error(e))

    def _io_error(self, e):
        code = R_NO_FLASH if e.args and e.args[0] == 28 else R_FAILED  # ENOSPC
        where = _NAMES[self._k].decode() if self._k < 4 else STATE_FILE
        return OtaError(code, "%s: flash write failed at byte %d (%s)" % (where, self.offset, e))

    def _header(self):
        # One ustar header, checked as the controller's reader checks it.
        h, k = self._hb, self._k
        if not any(h):  # a zero block: the end-of-archive marker
            if k < 4:
                raise _no(
                    R_UNSUPPORTED,
                    "not a bundle: member %d is missing, expected %s",
                    k + 1,
                    _NAMES[k].decode(),
                )
            self._st, self._left = _END, BLOCK
            return
        name, size = header(h, k)
        if k == 4:
            raise _no(R_UNSUPPORTED, "not a bundle: extra member 5 %s", text(name))
        if name != _NAMES[k]:
            raise _no(
                R_UNSUPPORTED,
                "not a bundle: member %d is %s, expected %s",
                k + 1,
                text(name),
                _NAMES[k].decode(),
            )
        if k == 0:
            if size > _MANIFEST_MAX:
                raise _no(R_UNSUPPORTED, "manifest.json: %d bytes, over %d", size, _MANIFEST_MAX)
            self._buf = bytearray(size)
        elif k == 1:
            if size != KEY_BYTES:
                raise _no(R_INTEGRITY, "manifest.sig: %d bytes, expected %d", size, KEY_BYTES)
            self._mb = self._buf
            self._buf = bytearray(KEY_BYTES)
        else:
            f = self._m["files"][k - 2]
            if size != f["size"]:
                raise _no(
                    R_INTEGRITY,
                    "slot/%s: %d bytes, the manifest says %d",
                    f["path"],
                    size,
                    f["size"],
                )
            self._f = open(self._dir + f["path"] + _PART, "wb")
            self._h = hashlib.sha256()
        self._st, self._left, self._pad = _DATA, size, pad(size)
        if not size:
            self._member_end()

    def _data(self, mv):
        if self._k < 2:
            at = len(self._buf) - self._left
            self._buf[at : at + len(mv)] = mv
            return
        self._f.write(mv)
        self._h.update(mv)
        self._unsynced += len(mv)
        if self._unsynced >= _SYNC:  # on littlefs, what a power cut keeps
            self._f.flush()
            self._unsynced = 0

    def _member_end(self):
        k = self._k
        if k == 1:
            self._accept()
        elif k >= 2:
            f = self._m["files"][k - 2]
            self._f.close()
            self._f = None
            path = self._dir + f["path"]
            if self._h.digest() != unhexlify(f["sha256"]):
                raise _no(R_INTEGRITY, "slot/%s: sha256 mismatch", f["path"])
            os.rename(path + _PART, path)
            self._h = None
        self._k = k + 1
        self._st, self._left = (_PAD, self._pad) if self._pad else (_HEAD, 0)

    def _accept(self):
        # manifest.json and manifest.sig are in: signature first (before any field is
        # trusted), then the fields, then what this node accepts; only then the slot is
        # touched. A refusal up to here changes nothing on flash.
        mb, sig = self._mb, self._buf
        self._mb = self._buf = None
        digest = hashlib.sha256(mb).digest()
        mine = key_id(self._n)
        try:
            ok = verify(self._n, sig, digest)
        except ValueError as e:  # the node's own key is malformed: a provisioning error
            raise OtaError(R_FAILED, str(e))
        if not ok:
            try:
                named = json.loads(mb)["key_id"]
            except Exception:  # noqa: BLE001 -- unsigned bytes: any shape at all
                named = mine
            if named != mine:
                raise _no(R_UNSUPPORTED, "manifest.sig: signed by key %s, not %s", named, mine)
            raise _no(R_INTEGRITY, "manifest.sig: signature does not verify with key %s", mine)
        bundle = hexlify(digest).decode()
        if self._want is not None and bundle != self._want:
            raise _no(R_INTEGRITY, "manifest.json: sha256 %s, offered %s", bundle, self._want)
        m = _manifest.check(mb)
        v = m["version"]
        if m["key_id"] != mine:
            raise _no(R_UNSUPPORTED, "manifest.json: names key %s, signed by %s", m["key_id"], mine)
        if self._board not in m["boards"]:
            raise _no(R_UNSUPPORTED, "manifest.json: not for board %s", self._board)
        now = self._running_version
        running = version(now) or (0, 0, 0)
        if version(v) <= running:
            raise _no(R_UNSUPPORTED, "manifest.json: version %s, running %s: downgrade", v, now)
        least = m["min_version"]
        if least is not None and running < version(least):
            raise _no(R_UNSUPPORTED, "manifest.json: needs %s or later, running %s", least, now)
        self._check_flash(m)
        # Commit: the slot is emptied (manifest.json first, per the slot contract), then the
        # verified manifest lands by rename as the resume record.
        self._mine = True
        d = self._dir
        for p in (self.root + "slots", d[:-1]):
            try:
                os.mkdir(p)
            except OSError:
                pass
        _clear(d)
        write_json_atomic(d + _PENDING, mb)
        self._m, self.bundle, self.version = m, bundle, v
        self.total = total(len(mb), m["files"])
        self.state = DOWNLOADING

    def _check_flash(self, m):
        bs, free = flash_free(self.root)
        need = _SPARE_BLOCKS
        for f in m["files"]:
            need += (f["size"] + bs - 1) // bs
            if self._files and f["path"] == _IMAGE:  # its files, one block or more each
                need += (f["size"] + bs - 1) // bs + _FILES_SLACK
        try:  # what the inactive slot holds now is freed first
            for name in os.listdir(self._dir[:-1]):
                free += (_size(self._dir + name) + bs - 1) // bs
        except OSError:
            pass
        if need > free:
            raise _no(R_NO_FLASH, "flash: %d bytes needed, %d free", need * bs, free * bs)

    # -- the end --------------------------------------------------------------------------

    def finish(self):
        # After the end-of-archive: every file checked again from flash, manifest.json in
        # place (written whole, then renamed), then ota.json names the new slot,
        # on trial. -> the new version
        if self._err:
            raise self._err
        try:
            if self._st != _DONE:
                raise OtaError(R_INTEGRITY, self._truncated())
            self.state = UPDATING
            for f in self._m["files"]:
                self._h = hashlib.sha256()
                path = self._dir + f["path"]
                if _size(path) != f["size"] or self._rehash(path, f["size"]) < 0:
                    raise _no(R_INTEGRITY, "slot/%s: short on flash", f["path"])
                if self._h.digest() != unhexlify(f["sha256"]):
                    raise _no(R_INTEGRITY, "slot/%s: sha256 mismatch on flash", f["path"])
            self._h = None
            d = self._dir
            if self._files:  # from the verified image; a cut here redoes it (no manifest yet)
                from lamp.ota.unpack import unpack

                try:
                    unpack(d + _IMAGE, d, self._hb)
                except ValueError as e:
                    raise _no(R_INTEGRITY, "slot/%s: %s", _IMAGE, e)
            with open(d + _PENDING, "rb") as f:
                mb = f.read()
            write_json_atomic(d + MANIFEST, mb)
            st = _boot_state(self.slot, self.running, True, R_INITIAL, "installing " + self.version)
            _put(self.root, st)
            # Last: a cut before this leaves the download resumable at its end marker (the
            # next Install() of the running slot drops the record left in it).
            _rm(d + _PENDING)
        except OtaError as e:
            raise self._abort(e)
        except OSError as e:
            raise self._abort(self._io_error(e))
        self.state = IDLE
        return self.version

    def _truncated(self):
        k = self._k
        if self._st == _DATA:
            return "truncated: %s needs %d more bytes" % (_NAMES[k].decode(), self._left)
        if self._st == _END:
            return _CUT_SHORT
        if k < 4:
            return "truncated: member %d (%s) is missing" % (k + 1, _NAMES[k].decode())
        return "truncated: no end-of-archive marker"

    def cancel(self):
        self._abort(OtaError(R_CANCELLED, "cancelled at byte %d" % self.offset))

    def _abort(self, e):
        # Drop this download: the inactive slot is emptied if it had begun to change.
        if self._f:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None
        if self._mine:
            _clear(self._dir)
        self._err, self._buf, self._mb, self._h = e, None, None, None
        self.state = IDLE
        return e

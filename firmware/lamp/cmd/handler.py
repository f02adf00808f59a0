# Authenticated commands (docs/commands.md): one handler for both transports (MQTT `cmd`,
# CoAP), so authentication, validation and the answer cannot differ between them.
# A command is a JSON envelope whose MAC is HMAC-SHA256 under the node's key over the
# envelope's canonical form; a counter above the last accepted one stops replayed and
# reordered commands. The order of the checks is part of the contract: nothing is
# authenticated before it is known to be well formed and ours, and nothing changes
# before it is authenticated, fresh and valid. The key and MACs are never logged.
# Loaded for one command with lamp.cmd.canon, lamp.cmd.args and lamp.cmd.control, and
# dropped with them after it (lamp.net.link).
import hashlib
import json
import os
from binascii import crc32, unhexlify

from lamp import log, unload
from lamp.check import ConfigError
from lamp.cmd.canon import _canon, _feed, _pads, _text, equal
from lamp.numbers import (
    COMMANDS,
    E_BAD_ARGS,
    E_BAD_MAC,
    E_FAILED,
    E_MALFORMED,
    E_REPLAY,
    E_UNKNOWN,
    E_WRONG_NODE,
    ERRORS,
    SCHEMA,
)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


# Wire limits; the controller (lanterna.wire.protocol) imports these and MAX_DEPTH.
MAX_BYTES = const(8192)  # a longer payload is malformed before it is parsed
MAX_ID = const(64)  # characters of a command id
MAX_CTR = 9007199254740991  # 2**53 - 1: exact in every JSON implementation
_KEY_BYTES = const(32)
_DETAIL = const(80)  # an ack's detail is cut here: it is read by people, sent by radio
_TAG = "cmd"
_HEX = "0123456789abcdef"
_FIELDS = ("args", "cmd", "ctr", "id", "mac", "node", "v")
_UNREADABLE = const(-1)  # the counter file cannot be trusted: every command is refused


class CommandError(Exception):
    # Raised by apply() (and by the checks here): the ack carries `code`, one of
    # lamp.numbers.ERRORS, `detail`, a short text for people, and `fields`, facts a
    # program reads (an update's LwM2M result: {"update_result": 11}).
    def __init__(self, code, detail="", fields=None):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
        self.fields = fields


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _short_str(v, most):
    return isinstance(v, str) and 0 < len(v) <= most and _text(v)


def _skip(s):
    pass


def _decode(raw):
    # -> the payload's JSON object; CommandError(E_MALFORMED) otherwise.
    if len(raw) > MAX_BYTES:
        raise CommandError(E_MALFORMED, "longer than %d bytes" % MAX_BYTES)
    try:
        env = json.loads(raw)
    except Exception:  # ValueError; MemoryError on a pathological payload
        raise CommandError(E_MALFORMED, "not JSON")
    if not isinstance(env, dict):
        raise CommandError(E_MALFORMED, "not a JSON object")
    return env


def _shape(env):
    # Every field present, of its type, and nothing else; CommandError(E_MALFORMED).
    for k in env:
        if k not in _FIELDS:
            raise CommandError(E_MALFORMED, "unknown field")
    for k in _FIELDS:
        if k not in env:
            raise CommandError(E_MALFORMED, "%s: missing" % k)
    v = env["v"]
    if not _is_int(v) or v != SCHEMA:
        raise CommandError(E_MALFORMED, "v: not %d" % SCHEMA)
    if not _short_str(env["id"], MAX_ID):
        raise CommandError(E_MALFORMED, "id: not 1-%d _text characters" % MAX_ID)
    if not _short_str(env["node"], MAX_ID) or not _short_str(env["cmd"], MAX_ID):
        raise CommandError(E_MALFORMED, "node, cmd: not short strings")
    ctr = env["ctr"]
    if not _is_int(ctr) or not 1 <= ctr <= MAX_CTR:
        raise CommandError(E_MALFORMED, "ctr: not an integer in 1..2^53-1")
    if not isinstance(env["args"], dict):
        raise CommandError(E_MALFORMED, "args: not an object")
    mac = env["mac"]
    if not isinstance(mac, str) or len(mac) != 64 or any(c not in _HEX for c in mac):
        raise CommandError(E_MALFORMED, "mac: not 64 lowercase hex digits")
    try:
        _canon(env, _skip)
    except ValueError as e:
        raise CommandError(E_MALFORMED, "not canonical: %s" % e)


# --- the counter file ---------------------------------------------------------------------
# "<counter> <crc32 of its digits, 8 hex>": a flipped bit that still parses as a number
# must not roll the counter back.


def _read_ctr(path):
    # -> the counter, None when there is no file, _UNREADABLE when it cannot be trusted
    try:
        with open(path) as f:
            s = f.read(40)
    except OSError as e:
        return None if e.args[0] == 2 else _UNREADABLE  # ENOENT
    try:
        n, c = s.split()
        if int(c, 16) == crc32(n.encode()) and n.isdigit():
            return int(n)
    except ValueError:
        pass
    return _UNREADABLE


class Commands:
    # node_id, key: this node's id and its 32-byte key; counter_path: the last accepted
    # counter; apply(cmd, args) -> result dict (may raise CommandError); config_keys: the
    # keys config_set may change.
    def __init__(self, node_id, key, counter_path, apply, config_keys=()):
        if not isinstance(key, bytes) or len(key) != _KEY_BYTES:
            raise ValueError("commands: key: expected %d bytes" % _KEY_BYTES)
        self.node_id = node_id
        self._ipad, self._opad = _pads(key)
        self.path = counter_path
        self.apply = apply
        self.config_keys = tuple(config_keys)
        self.accepted = self.rejected = 0
        self.last = self._load()

    def _load(self):
        # The file, or its temp copy if a save was cut short. Each save writes a fresh temp
        # file, so one left behind is never older than the file: the larger value is the
        # safe one. An unreadable file is not taken as 0 (that would reopen every counter
        # ever used): commands are refused until the node is provisioned with a new key.
        last = _read_ctr(self.path)
        if last == _UNREADABLE:
            log.error(_TAG, "%s unreadable: commands refused until re-provisioned", self.path)
            return last
        tmp = _read_ctr(self.path + ".tmp")
        if tmp is not None and tmp != _UNREADABLE and (last is None or tmp > last):
            last = tmp
        return last or 0

    def _save(self, ctr):
        # Temp file then rename, as lamp.energy does: a power cut leaves the old or the new
        # value, never half of one (littlefs renames atomically; FAT cannot rename over).
        tmp = self.path + ".tmp"
        n = "%d" % ctr
        with open(tmp, "w") as f:
            f.write("%s %08x\n" % (n, crc32(n.encode())))
        try:
            os.rename(tmp, self.path)
        except OSError:
            os.remove(self.path)
            os.rename(tmp, self.path)

    def _mac_ok(self, env):
        mac = unhexlify(env.pop("mac"))
        h = hashlib.sha256(self._ipad)
        _canon(env, _feed(h))
        return equal(hashlib.sha256(self._opad + h.digest()).digest(), mac)

    def handle(self, raw):
        # raw: the envelope's bytes (or str) -> the ack dict. Never raises.
        env = None
        try:
            env = _decode(raw)
            _shape(env)
            ctr = env["ctr"]
            if env["node"] != self.node_id:
                raise CommandError(E_WRONG_NODE, "for another node")
            if not self._mac_ok(env):
                raise CommandError(E_BAD_MAC, "mac does not verify")
            if self.last == _UNREADABLE:
                raise CommandError(E_REPLAY, "counter store unreadable")
            if ctr <= self.last:
                # The node's counter is a field too: the controller resumes above it.
                raise CommandError(
                    E_REPLAY, "ctr %d not above %d" % (ctr, self.last), {"ctr": self.last}
                )
            cmd = env["cmd"]
            if cmd not in COMMANDS:
                raise CommandError(E_UNKNOWN, "unknown command")
            # The argument table only while checking: gone before apply(), whose own peak
            # (config_set builds the whole config) must not sit on top of it.
            from lamp.cmd.args import clean

            try:
                args = clean(cmd, env["args"], self.config_keys)
            except KeyError:  # in COMMANDS, without a row in the table
                raise CommandError(E_UNKNOWN, "no arguments defined")
            except ConfigError as e:
                raise CommandError(E_BAD_ARGS, str(e))
            finally:
                del clean
                unload("cmd.args")
            # Counter first: a crash after applying must not leave it replayable. If it
            # cannot be saved, nothing is applied.
            try:
                self._save(ctr)
            except OSError as e:
                raise CommandError(E_FAILED, "cannot save counter: %s" % e)
            self.last = ctr
            log.info(_TAG, "%s ctr=%d id=%s", cmd, ctr, env["id"])
            result = self.apply(cmd, args)
            self.accepted += 1
            ack = self._ack(env, True)
            ack["result"] = result or {}
            return ack
        except CommandError as e:
            code = e.code if e.code in ERRORS else E_FAILED
            detail = e.detail
            fields = e.fields
        except Exception as e:  # a fault in apply() (or here) is an answer, not a crash
            code = E_FAILED
            detail = "%s: %s" % (type(e).__name__, e)
            fields = None
        self.rejected += 1
        detail = ("%s" % detail)[:_DETAIL]
        ack = self._ack(env, False)
        ack["error"] = code
        ack["detail"] = detail
        if fields:
            ack.update(fields)
        log.warn(_TAG, "%s id=%s: %s", code, ack["id"], detail)
        return ack

    def _ack(self, env, ok):
        # The id is echoed whenever the payload had a well-formed one, even if it was
        # rejected, so the controller can match the answer to its command.
        i = env.get("id") if isinstance(env, dict) else None
        return {
            "v": SCHEMA,
            "id": i if _short_str(i, MAX_ID) else None,
            "node": self.node_id,
            "ok": ok,
        }

    def status(self):
        return {"ctr": self.last, "accepted": self.accepted, "rejected": self.rejected}

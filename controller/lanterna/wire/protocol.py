"""Commands as the controller sends them: canonical form, MAC, envelope, ack (docs/commands.md).

The node checks every command with ``lamp.cmd.handler``; this module makes what it accepts.
It is written independently of the node's serialiser (CPython's ``json.dumps`` and
``hmac`` here, a hand-written walk and RFC 2104 over ``hashlib`` there), and the interop
test holds the two to the same bytes. The wire names (schema version, commands, error
codes) are lanterna.wire.numbers', held equal to the node's by a test; the limits come
from the firmware's own modules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from lamp.cmd.canon import MAX_DEPTH
from lamp.cmd.handler import MAX_BYTES, MAX_CTR, MAX_ID
from lanterna.wire import numbers

KEY_BYTES = 32
COMMANDS = numbers.COMMANDS
ERRORS = numbers.ERRORS
FIELDS = ("v", "id", "node", "ctr", "cmd", "args", "mac")

__all__ = [
    "COMMANDS",
    "ERRORS",
    "KEY_BYTES",
    "MAX_BYTES",
    "MAX_CTR",
    "MAX_DEPTH",
    "MAX_ID",
    "Ack",
    "AckError",
    "canonical",
    "encode",
    "mac",
    "new_id",
    "new_key",
    "parse_ack",
    "sign",
]


def _text_ok(s: str) -> bool:
    # Printable ASCII without '"' and '\': json.dumps writes these as they are, and so
    # does the node's serialiser; anything else would have several spellings.
    # (str methods, not a loop per character: a schedule has thousands of them, signed
    # for every node of a fan-out; for ASCII, isprintable() is exactly 0x20-0x7e)
    return s.isascii() and s.isprintable() and '"' not in s and "\\" not in s


def _check(v: Any, where: str, depth: int = 0) -> None:
    if v is None or isinstance(v, bool | int):
        return
    if isinstance(v, str):
        if not _text_ok(v):
            raise ValueError(f"{where}: {v!r}: not printable ASCII, or holds '\"' or '\\'")
        return
    if isinstance(v, list | dict):
        if depth >= MAX_DEPTH:
            raise ValueError(f"{where}: nested deeper than {MAX_DEPTH}")
        if isinstance(v, list):
            for i, x in enumerate(v):
                _check(x, f"{where}[{i}]", depth + 1)
            return
        for k, x in v.items():
            if not isinstance(k, str) or not _text_ok(k):
                raise ValueError(f"{where}: key {k!r}: not a printable ASCII string")
            _check(x, f"{where}.{k}", depth + 1)
        return
    raise ValueError(f"{where}: {type(v).__name__} has no canonical form (no floats)")


def canonical(obj: Any) -> bytes:
    """The canonical JSON of `obj`: keys sorted, no whitespace, ASCII.

    ValueError for anything the node would reject as malformed: floats, tuples and other
    non-JSON types, strings outside printable ASCII or holding '"' or '\\', nesting
    deeper than MAX_DEPTH.
    """
    _check(obj, "$")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def mac(key: bytes, envelope: dict[str, Any]) -> str:
    """HMAC-SHA256 under `key` of the canonical envelope without its "mac", as hex."""
    body = {k: v for k, v in envelope.items() if k != "mac"}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def new_key() -> bytes:
    """A fresh per-node key (provisioning writes it to the node and to the store)."""
    return secrets.token_bytes(KEY_BYTES)


def new_id() -> str:
    """A command id unique without coordination: the ack names it."""
    return uuid.uuid4().hex


def sign(
    key: bytes,
    node: str,
    cmd: str,
    args: dict[str, Any],
    ctr: int,
    id: str | None = None,  # the envelope's own field name
) -> dict[str, Any]:
    """The envelope of one command for `node`, with its MAC.

    `ctr` must be above the last counter the node accepted (the caller's store keeps it
    per node). `cmd` is not checked against COMMANDS: the node is the authority, and
    answers unknown_command. ValueError for anything the node would reject as malformed.
    """
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"key: expected {KEY_BYTES} bytes")
    if isinstance(ctr, bool) or not isinstance(ctr, int) or not 1 <= ctr <= MAX_CTR:
        raise ValueError(f"ctr: {ctr!r} not an integer in 1..{MAX_CTR}")
    if not isinstance(args, dict):
        raise ValueError("args: expected a dict")
    if id is None:
        id = new_id()
    for name, s in (("id", id), ("node", node), ("cmd", cmd)):
        if not isinstance(s, str) or not 0 < len(s) <= MAX_ID or not _text_ok(s):
            raise ValueError(f"{name}: {s!r}: not 1-{MAX_ID} printable ASCII characters")
    env: dict[str, Any] = {
        "v": numbers.SCHEMA,
        "id": id,
        "node": node,
        "ctr": ctr,
        "cmd": cmd,
        "args": args,
    }
    raw = canonical(env)  # checked once: the envelope with its MAC adds a hex string
    env["mac"] = hmac.new(key, raw, hashlib.sha256).hexdigest()
    # the size limit, without a second walk of the arguments: the canonical envelope is
    # `raw` with `"mac":"<64 hex>"` and one comma more (held by tests/test_commander_scale)
    size = len(raw) + _MAC_FIELD
    if size > MAX_BYTES:
        raise ValueError(f"command of {size} bytes: the node takes at most {MAX_BYTES}")
    return env


_MAC_FIELD = len(',"mac":""') + 64


def encode(envelope: dict[str, Any]) -> bytes:
    """The payload to publish: the envelope's canonical JSON (at most MAX_BYTES)."""
    raw = canonical(envelope)
    if len(raw) > MAX_BYTES:
        raise ValueError(f"command of {len(raw)} bytes: the node takes at most {MAX_BYTES}")
    return raw


class AckError(ValueError):
    pass


# Fields a failed ack may carry beside its detail, for programs (docs/protocol.md): the
# node's last accepted counter on a replay, an update's LwM2M Update Result.
ACK_FACTS = ("ctr", "update_result")


@dataclass(frozen=True)
class Ack:
    """A node's answer to one command."""

    id: str | None
    node: str
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    detail: str = ""
    ctr: int | None = None  # replay: the counter the node last accepted
    update_result: int | None = None  # ota refused now: its LwM2M Update Result


def parse_ack(payload: bytes | str | dict[str, Any]) -> Ack:
    """An ack payload (as received, or already decoded) -> Ack; AckError if it is not one."""
    if isinstance(payload, dict):
        obj = payload
    else:
        try:
            obj = json.loads(payload)
        except ValueError as e:
            raise AckError(f"ack: not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise AckError("ack: not a JSON object")
    if obj.get("v") != numbers.SCHEMA or isinstance(obj.get("v"), bool):
        raise AckError(f"ack: v: {obj.get('v')!r}, expected {numbers.SCHEMA}")
    i, node, ok = obj.get("id"), obj.get("node"), obj.get("ok")
    if not (i is None or isinstance(i, str)) or not isinstance(node, str):
        raise AckError("ack: id or node: wrong type")
    if ok is True:
        result = obj.get("result")
        if not isinstance(result, dict) or set(obj) != {"v", "id", "node", "ok", "result"}:
            raise AckError("ack: ok ack wants exactly v, id, node, ok, result (an object)")
        return Ack(i, node, True, result)
    if ok is False:
        error, detail = obj.get("error"), obj.get("detail")
        if error not in ERRORS or not isinstance(detail, str):
            raise AckError(f"ack: error {error!r} not one of {', '.join(ERRORS)}")
        extra = set(obj) - {"v", "id", "node", "ok", "error", "detail"}
        if not {"v", "id", "node", "ok", "error", "detail"} <= set(obj) or extra - set(ACK_FACTS):
            raise AckError(
                "ack: failed ack wants v, id, node, ok, error, detail (and maybe "
                + ", ".join(ACK_FACTS)
                + ")"
            )
        facts = {k: obj[k] for k in extra}
        for k, x in facts.items():
            if isinstance(x, bool) or not isinstance(x, int) or x < 0:
                raise AckError(f"ack: {k}: {x!r} not a non-negative integer")
        return Ack(i, node, False, error=error, detail=detail, **facts)
    raise AckError("ack: ok: not a boolean")

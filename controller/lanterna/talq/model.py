"""TALQ's vocabulary as the gateway writes it: addresses, attributes, errors, time.

- A node's device address is a name-based UUID (RFC 9562 version 5) of its id in the
  gateway's namespace: stable across restarts and stores, never stored.
- Group, calendar, program and logger addresses are the CMS's own strings.
- Every refusal is a ``TalqError``: an HTTP status and one TALQErrorMessage (``key``, a
  ``description`` that says what and where, ``references``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from lanterna.errors import LanternaError

VERSION = "2.7.1"
NAMESPACE = uuid.UUID("6c616e74-6572-5a61-8000-74616c710001")  # "lanterna", "talq"
NIL = "00000000-0000-0000-0000-000000000000"
VENDOR = "Lanterna"


def device_address(node: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "node:" + node))


def gateway_device_address() -> str:
    """The gateway's own device (its GatewayFunction) on the CMS."""
    return str(uuid.uuid5(NAMESPACE, "gateway"))


class TalqError(LanternaError):
    def __init__(
        self,
        status: int,
        key: str,
        description: str,
        references: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.key = key
        self.description = description
        self.references = references or []

    def body(self) -> list[dict[str, Any]]:
        m: dict[str, Any] = {"key": self.key, "description": self.description}
        if self.references:
            m["references"] = [
                {"address": {"resource": r, "address": a}, "tag": f"ref{i}"}
                for i, (r, a) in enumerate(self.references)
            ]
        return [m]


def payload_error(what: str) -> TalqError:
    return TalqError(400, "payloadError", what)


def not_found(resource: str, address: str, what: str | None = None) -> TalqError:
    return TalqError(
        404, "resourceNotFound", what or f"/{resource}/{address}: not found", [(resource, address)]
    )


def iso(ts: float) -> str:
    """RFC 3339 UTC, to the second (what the node's clock gives)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_time(text: Any, where: str) -> float:
    """An RFC 3339 date-time (with a Z or an offset) -> epoch seconds; TalqError 400."""
    import datetime as dt

    if not isinstance(text, str):
        raise payload_error(f"{where}: expected an RFC 3339 date-time, got {text!r}")
    t = text.strip()
    if t[-1:] in "zZ":
        t = t[:-1] + "+00:00"
    try:
        d = dt.datetime.fromisoformat(t)
    except ValueError:
        raise payload_error(f"{where}: {text!r} is not an RFC 3339 date-time") from None
    if d.tzinfo is None:
        raise payload_error(f"{where}: {text!r} has no time zone (Z or an offset)")
    return d.timestamp()


# -- attributes (the data model's Attribute* types) --------------------------------------


def attr(kind: str, value: Any, at: float | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"type": "Attribute" + kind, "value": value}
    if at is not None:
        a["timestamp"] = iso(at)
    return a


def level_state(level: int) -> dict[str, Any]:
    return {"name": "LevelState", "value": int(level)}


def a_float(v: float, at: float | None = None) -> dict[str, Any]:
    return attr("Float", float(v), at)


def a_int(v: int, at: float | None = None) -> dict[str, Any]:
    return attr("Integer", int(v), at)


def a_str(v: str, at: float | None = None) -> dict[str, Any]:
    return attr("String", v, at)


def a_bool(v: bool, at: float | None = None) -> dict[str, Any]:
    return attr("Boolean", bool(v), at)

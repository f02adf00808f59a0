"""What a command to one node came to (lanterna.fleet.commander, lanterna.fleet.fanout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lanterna.wire import protocol


@dataclass
class Outcome:
    node: str
    # ok | error | timeout (the broker took it, the node did not answer) | unsent (it
    # never reached the broker: refused by the client or never PUBACKed)
    status: str = "pending"
    result: dict[str, Any] | None = None
    error: str | None = None
    detail: str | None = None
    update_result: int | None = None  # a refused ota: its LwM2M Update Result
    attempts: int = 0
    ms: int | None = None
    command: str | None = None  # the id of the envelope last sent

    def as_json(self) -> dict[str, Any]:
        out = {
            "node": self.node,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "detail": self.detail,
            "attempts": self.attempts,
            "ms": self.ms,
        }
        if self.update_result is not None:
            out["update_result"] = self.update_result
        return out


class SendError(Exception):
    pass


def ack_json(ack: protocol.Ack) -> dict[str, Any]:
    if ack.ok:
        return {"ok": True, "result": ack.result}
    out: dict[str, Any] = {"ok": False, "error": ack.error, "detail": ack.detail}
    for k in protocol.ACK_FACTS:
        if getattr(ack, k) is not None:
            out[k] = getattr(ack, k)
    return out

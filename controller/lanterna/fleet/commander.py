"""Signed commands to many nodes, and their answers (docs/cli.md, "Commands to nodes").

For each node: the next counter is reserved in the store (committed before anything is
sent, so a crash can never reuse one), the envelope is signed with the node's key
(lanterna.wire.protocol), recorded as pending, and published on the node's ``cmd`` topic at
QoS 1 (or PUT to its CoAP resource). Answers are matched by envelope id.

Over MQTT (lanterna.fleet.fanout) every node's command goes out at once, through a
window of publishes the broker has not yet acknowledged, and one subscription to the
ack topics settles them as they arrive. A node that does not answer within `timeout`
gets the *same* signed envelope again, up to `retries` more times: if the first copy was
lost, the node takes the second; if it was applied and only its ack was lost, the node
refuses the copy as a ``replay`` whose ``ctr`` is the envelope's own, which means "already
applied" (docs/commands.md, "Counter"): settled ok, never applied twice. A copy with a
new counter would be applied a second time in that case.

Over CoAP a node that does not answer gets a fresh envelope (new id, new counter).

On either transport a ``replay`` answer with a counter above the envelope's means the
store's counter is behind the node's (a store restored from a backup): the counter is
raised past the node's and the command sent once more, fresh, at once. Every outcome
ends up in the store's ``commands`` table.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from lanterna.context import Broker
from lanterna.fleet.outcome import Outcome, SendError
from lanterna.fleet.outcome import ack_json as _ack_json
from lanterna.store.db import Node, Store
from lanterna.wire import protocol
from lanterna.wire.topics import PREFIX

COAP_RESOURCES = {"dim": "dim", "schedule": "schedule"}
# QoS 1 messages paho keeps on the wire before the broker's PUBACK: what the generated and
# the test broker allow a client (max_inflight_messages)
MAX_INFLIGHT = 1000
# publishes handed to paho and not yet PUBACKed: below the 65,535 message ids it has
WINDOW = 20000


class Commander:
    def __init__(self, store: Store, prefix: str = PREFIX) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.stats: dict[str, Any] = {}

    def _envelopes(
        self, nodes: Sequence[Node], cmd: str, args: dict[str, Any], via: str
    ) -> dict[str, tuple[Node, dict[str, Any]]]:
        """id -> (node, signed envelope), counters reserved and commands recorded."""
        ctrs = self.store.next_ctrs([n.id for n in nodes])
        out = {}
        for n in nodes:
            env = protocol.sign(n.key, n.id, cmd, args, ctrs[n.id], id=uuid.uuid4().hex)
            out[env["id"]] = (n, env)
        self.store.add_commands(
            [
                {"id": i, "node": n.id, "ctr": e["ctr"], "cmd": cmd, "args": args, "via": via}
                for i, (n, e) in out.items()
            ]
        )
        return out

    def _settle(self, o: Outcome, ack: protocol.Ack, t0: float) -> bool:
        """Record an answer; False when the command should be sent again (replay)."""
        o.ms = int((time.monotonic() - t0) * 1000)
        if ack.ok:
            o.status, o.result = "ok", ack.result
            return True
        if ack.error == "replay" and ack.ctr is not None and o.attempts <= 1:
            # The node says where its counter stands (another controller, a restored
            # store): resume above it, once.
            self.store.raise_ctr(o.node, ack.ctr)
            return False
        o.status, o.error, o.detail = "error", ack.error, ack.detail
        o.update_result = ack.update_result
        return True

    def send_mqtt(
        self,
        broker: Broker,
        nodes: Sequence[Node],
        cmd: str,
        args: dict[str, Any],
        timeout: float = 10.0,
        retries: int = 2,
        progress: Callable[[Outcome], None] | None = None,
        inflight: int = MAX_INFLIGHT,
        window: int = WINDOW,
        client_queue: int = 0,
        stall_s: float | None = None,
    ) -> list[Outcome]:
        """Send to every node at once and settle each as its ack arrives (docs/cli.md,
        "Commands to nodes"). `inflight`: QoS 1 publishes on the wire before the broker's
        PUBACK (paho's default is 20: about 900 acks/s at 10,000 nodes); `window`:
        publishes handed to paho and not yet PUBACKed (paho numbers them 1..65535 and
        refuses more); `client_queue`: paho's own queue limit (0: none; tests make it
        tiny to see refusals); `stall_s`: how long a broker that takes nothing is waited
        for before what is left is reported unsent. The last run's counts (published,
        refused by the client, resent) are in `self.stats`."""
        from lanterna.fleet.fanout import Fanout

        f = Fanout(self, broker, nodes, cmd, args, timeout, retries, progress)
        try:
            return f.run(inflight, window, client_queue, stall_s)
        finally:
            self.stats = f.stats

    def send_coap(
        self,
        nodes: Sequence[Node],
        cmd: str,
        args: dict[str, Any],
        timeout: float = 10.0,
        retries: int = 2,
        progress: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        import asyncio

        if cmd not in COAP_RESOURCES:
            raise SendError(f"{cmd} is not a CoAP resource of the node (only dim, schedule)")
        for n in nodes:
            if not n.coap_port:
                raise SendError(f"node {n.id} has no CoAP address in the store")

        async def one(ctx, n: Node, o: Outcome) -> None:
            import aiocoap

            t0 = time.monotonic()
            for _ in range(2 + retries):  # + one resend after a replay answer
                o.attempts += 1
                ((i, (_n, env)),) = self._envelopes([n], cmd, args, "coap").items()
                o.command = i
                req = aiocoap.Message(
                    code=aiocoap.PUT,
                    uri=f"coap://{n.coap_host}:{n.coap_port}/{COAP_RESOURCES[cmd]}",
                    payload=protocol.encode(env),
                    content_format=50,
                )
                try:
                    resp = await asyncio.wait_for(ctx.request(req).response, timeout)
                except (TimeoutError, OSError, aiocoap.error.Error) as e:
                    self.store.finish_command(i, "timeout", None)
                    o.status, o.detail = "timeout", f"{type(e).__name__}: {e}"[:200]
                    continue
                try:
                    ack = protocol.parse_ack(resp.payload)
                except (protocol.AckError, ValueError):
                    self.store.finish_command(i, "error", None)
                    o.status, o.error = "error", "malformed"
                    o.detail = f"CoAP {resp.code}: not an ack"
                    break
                settled = self._settle(o, ack, t0)
                self.store.finish_command(i, o.status if settled else "error", _ack_json(ack))
                if settled:
                    break
            if progress:
                progress(o)

        async def main() -> list[Outcome]:
            import aiocoap

            ctx = await aiocoap.Context.create_client_context()
            try:
                outs = [Outcome(n.id) for n in nodes]
                await asyncio.gather(*(one(ctx, n, o) for n, o in zip(nodes, outs, strict=True)))
                return outs
            finally:
                await ctx.shutdown()

        return asyncio.run(main())


def parse_duration(text: str) -> int:
    """'90s', '30m', '2h', '1h30m', '1d', or plain seconds -> seconds (> 0)."""
    t = text.strip().lower()
    if t.isdigit():
        s = int(t)
    else:
        parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", t)
        if not parts or not any(parts.groups()):
            raise ValueError(f"{text!r} is not a duration (examples: 90s, 30m, 2h, 1h30m, 1d)")
        d, h, m, sec = (int(g or 0) for g in parts.groups())
        s = ((d * 24 + h) * 60 + m) * 60 + sec
    if s <= 0:
        raise ValueError(f"{text!r}: a duration must be above zero")
    return s

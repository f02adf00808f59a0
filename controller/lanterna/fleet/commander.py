"""Signed commands to many nodes, and their answers (docs/cli.md, "Commands to nodes").

For each node: the next counter is reserved in the store (committed before anything is
sent, so a crash can never reuse one), the envelope is signed with the node's key
(lanterna.wire.protocol), recorded as pending, and published on the node's ``cmd`` topic at
QoS 1 (or PUT to its CoAP resource). Answers are matched by envelope id. A node that
does not answer within `timeout` gets a fresh envelope (new id, new counter: the old one
may still arrive, and a resent copy would be refused as a replay), up to `retries` more
times. A ``replay`` answer means the store's counter is behind the node's (a store
restored from a backup): the counter is raised past the node's and the command resent
once at once. Every outcome ends up in the store's ``commands`` table.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lanterna.context import Broker
from lanterna.store.db import Node, Store
from lanterna.wire import protocol
from lanterna.wire import topics as T
from lanterna.wire.topics import PREFIX

COAP_RESOURCES = {"dim": "dim", "schedule": "schedule"}


@dataclass
class Outcome:
    node: str
    status: str = "pending"  # ok | error | timeout
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


class Commander:
    def __init__(self, store: Store, prefix: str = PREFIX) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")

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
    ) -> list[Outcome]:

        outcomes = {n.id: Outcome(n.id) for n in nodes}
        by_id: dict[str, str] = {}  # envelope id -> node, every attempt's
        answered: dict[str, protocol.Ack] = {}  # received, not yet looked at
        handled: set[str] = set()  # ids whose answer was taken (a QoS 1 dup is ignored)
        cv = threading.Condition()
        subscribed = threading.Event()
        failure: list[str] = []

        def on_connect(c, _u, _f, rc, _p) -> None:
            if rc.is_failure:
                failure.append(str(rc))
                subscribed.set()
                return
            c.subscribe(T.fleet_filter(self.prefix, T.ACK), qos=1)

        def on_subscribe(*_a: Any) -> None:
            subscribed.set()

        def on_message(_c, _u, m) -> None:
            try:
                ack = protocol.parse_ack(m.payload)
            except (protocol.AckError, ValueError):
                return
            with cv:
                fresh = ack.id not in answered and ack.id not in handled
                if ack.id in by_id and fresh and ack.node == by_id[ack.id]:
                    answered[ack.id] = ack
                    cv.notify_all()

        c = broker.client("lanterna-cli-" + uuid.uuid4().hex[:8])
        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        try:
            c.connect(broker.host, broker.port, keepalive=30)
        except OSError as e:
            raise SendError(f"broker {broker.url}: {e.strerror or e}") from None
        c.loop_start()
        try:
            if not subscribed.wait(10) or failure:
                why = f"refused ({failure[0]})" if failure else "no answer"
                raise SendError(f"broker {broker.url}: {why}")
            t0 = time.monotonic()
            pending = list(nodes)
            attempt = 0
            while pending and attempt <= retries:
                attempt += 1
                envs = self._envelopes(pending, cmd, args, "mqtt")
                sent: dict[str, str] = {}  # node -> this attempt's id
                for i, (n, env) in envs.items():
                    with cv:
                        by_id[i] = n.id
                    sent[n.id] = i
                    outcomes[n.id].attempts += 1
                    outcomes[n.id].command = i
                    c.publish(
                        T.node_topic(self.prefix, n.site, n.id, T.CMD), protocol.encode(env), qos=1
                    )
                deadline = time.monotonic() + timeout
                again: list[Node] = []
                waiting = {n.id: n for n in pending}
                with cv:
                    while waiting:
                        for i, ack in list(answered.items()):
                            node = by_id[i]
                            del answered[i]
                            handled.add(i)
                            if node not in waiting:
                                continue  # an answer to an earlier try, already settled
                            o = outcomes[node]
                            settled = self._settle(o, ack, t0)
                            self.store.finish_command(
                                i, o.status if settled else "error", _ack_json(ack)
                            )
                            n = waiting.pop(node)
                            if settled:
                                if progress:
                                    progress(o)
                            else:
                                again.append(n)
                        left = deadline - time.monotonic()
                        if not waiting or left <= 0:
                            break
                        cv.wait(left)
                for node, n in waiting.items():
                    self.store.finish_command(sent[node], "timeout", None)
                    again.append(n)
                pending = again
            for n in pending:
                o = outcomes[n.id]
                if o.status == "pending":
                    o.status, o.detail = "timeout", f"no answer in {timeout:g} s"
                    if progress:
                        progress(o)
        finally:
            c.disconnect()
            c.loop_stop()
        return [outcomes[n.id] for n in nodes]

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


def _ack_json(ack: protocol.Ack) -> dict[str, Any]:
    if ack.ok:
        return {"ok": True, "result": ack.result}
    out: dict[str, Any] = {"ok": False, "error": ack.error, "detail": ack.detail}
    for k in protocol.ACK_FACTS:
        if getattr(ack, k) is not None:
            out[k] = getattr(ack, k)
    return out


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

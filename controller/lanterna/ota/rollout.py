"""Staged firmware rollouts (docs/ota.md, "Rollouts"): a signed bundle to many nodes in
waves, a canary first, halted when too many fail.

A rollout and every node's progress live in the store (tables ``rollouts`` and
``rollout_nodes``), so a controller that stops mid-rollout (Ctrl-C, a crash, a reboot)
resumes with ``lanterna ota resume``: settled nodes are never offered again, the others
are offered again, and a node answers an offer idempotently (it resumes a download at the
byte, or says it already runs the version). A node is settled when it is ``done`` (it
confirmed the new version after its own health window), ``failed`` (it reported a failed
download, install or trial, or rolled back, or timed out) or ``refused`` (it refused the
offer: a downgrade, another board, not signed by the key it holds, ...).

The orchestrator offers a wave, serves the chunks its nodes ask for (lanterna.ota.server),
follows their ``ota`` and ``boot`` events, and opens the next wave only when every node
of the current one is settled and the health window has passed with none of them rolling
back. When the failed share of the settled nodes goes above ``max_failures`` it halts:
no further offers (nodes already downloading finish or fail on their own).
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from lanterna.context import Broker

# The plan and the store's tables, re-exported: a rollout is used through this module.
from lanterna.ota.plan import (  # noqa: F401
    ACTIVE,
    IN_FLIGHT,
    SETTLED,
    Plan,
    RolloutError,
    assign_waves,
    check_canary,
    parse_share,
    parse_waves,
)
from lanterna.ota.rollout_store import Rollouts, summary  # noqa: F401
from lanterna.store.db import Node, Store
from lanterna.wire import numbers as N
from lanterna.wire import topics as T
from lanterna.wire.topics import PREFIX

# -- the orchestrator ------------------------------------------------------------------------


class Orchestrator:
    """Runs one rollout until it is done, halted, paused or aborted (see the module)."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        rid: int,
        bundle: bytes,
        prefix: str = PREFIX,
        progress: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        from lanterna.ota.server import ChunkServer, bundle_id

        self.store = store
        self.rollouts = Rollouts(store)
        self.broker = broker
        self.rid = rid
        self.r = self.rollouts.get(rid)
        if bundle_id(bundle) != self.r["bundle_id"]:
            raise RolloutError(f"{self.r['bundle']}: not the bundle rollout {rid} was started with")
        self.plan = self.rollouts.plan(self.r)
        self.version = self.r["version"]
        self.prefix = prefix.rstrip("/")
        self.progress = progress
        self.server = ChunkServer(broker, prefix=self.prefix + "/")
        self.server.add(bundle)
        self.events: queue.Queue[tuple[str, str, bytes]] = queue.Queue()
        self._watch = broker.client("lanterna-rollout-" + uuid.uuid4().hex[:8])
        self._watch.on_connect = lambda c, _u, _f, rc, _p: (
            rc.is_failure
            or c.subscribe(
                [
                    (T.fleet_filter(self.prefix, T.EVENT), 1),
                    (T.fleet_filter(self.prefix, T.STATE), 1),
                ]
            )
        )
        self._watch.on_message = self._on_message
        self._wake = threading.Event()

    def _on_message(self, _c, _u, m) -> None:
        parts = m.topic.split("/")
        self.events.put((parts[-2], parts[-1], m.payload))
        self._wake.set()

    # -- what a node says ------------------------------------------------------------

    def _apply(self, node: str, leaf: str, raw: bytes, rows: dict[str, dict[str, Any]]) -> None:
        row = rows.get(node)
        if row is None or row["state"] in ("failed", "refused"):
            return
        try:
            p = json.loads(raw)
        except ValueError:
            return
        if not isinstance(p, dict):
            return
        v = self.version
        if row["state"] == "done":  # settled: only a node seen back on another version
            if leaf == "state" and "fw" in p and p["fw"] != v:
                self._set(node, "failed", result=N.R_FAILED, detail=f"back on {p['fw']}")
            return
        if leaf == "event" and p.get("event") == N.EV_OTA and p.get("version") == v:
            state, result = p.get("state"), p.get("result")
            if state == N.DOWNLOADING:
                self._set(node, "downloading", progress=p.get("progress"))
            elif state in (N.DOWNLOADED, N.UPDATING):
                self._set(node, "installing", progress=100)
            elif state == N.IDLE and result == N.R_SUCCESS:
                self._set(node, "done", result=N.R_SUCCESS, detail=f"runs {v}")
            elif state == N.IDLE and result not in (N.R_INITIAL, None):
                # unsupported (not for this node: board, key, version) and deferred are
                # the node refusing the bundle; anything else is an update that failed.
                gone = "refused" if result in (N.R_UNSUPPORTED, N.R_DEFERRED) else "failed"
                self._set(node, gone, result=result, detail=p.get("detail") or "")
        elif leaf == "event" and p.get("event") == N.EV_BOOT:
            ota: dict[str, Any] = p["ota"] if isinstance(p.get("ota"), dict) else {}
            if p.get("fw") == v and ota.get("trial"):
                self._set(node, "trial")
            elif row["state"] in ("installing", "trial") and p.get("fw") != v:
                why = ota.get("detail") or f"booted {p.get('fw')} again"
                self._set(node, "failed", result=ota.get("result") or N.R_FAILED, detail=why)
        elif leaf == "state" and p.get("fw") != v and row["state"] == "trial":
            self._set(node, "failed", result=N.R_FAILED, detail=f"back on {p.get('fw')}")

    def _set(self, node: str, state: str, **fields: Any) -> None:
        self.rollouts.set_node(self.rid, node, state, **fields)

    # -- offers ----------------------------------------------------------------------

    def _offer(self, nodes: list[Node]) -> None:
        from lanterna.fleet.commander import Commander

        args = {
            "version": self.version,
            "bundle": self.r["bundle_id"],
            "size": self.r["size"],
            "chunk": self.plan.chunk,
        }
        for n in nodes:
            self._set(n.id, "offered")
        outs = Commander(self.store, self.prefix).send_mqtt(self.broker, nodes, "ota", args)
        for o in outs:
            res = o.result or {}
            if o.status == "ok" and res.get("result") == N.R_SUCCESS:
                self._set(o.node, "done", result=N.R_SUCCESS, detail=f"runs {self.version}")
            elif o.status == "ok":
                self._set(o.node, "downloading", progress=0)
            elif o.status == "error" and o.update_result == N.R_DEFERRED:
                self._set(o.node, "trial", detail=o.detail)  # confirmed (or not) later
            elif o.status == "error":
                self._set(o.node, "refused", result=o.update_result, detail=o.detail or o.error)
            else:
                self._set(o.node, "failed", result=N.R_CONN_LOST, detail=o.detail or "no answer")

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> str:
        """-> the rollout's state when this returns: done, halted, paused or aborted."""
        self.server.start()
        try:
            self._watch.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as e:
            self.server.stop()
            raise RolloutError(f"broker {self.broker.url}: {e.strerror or e}") from None
        self._watch.loop_start()
        try:
            return self._loop()
        finally:
            self._watch.disconnect()  # first: loop_stop() alone waits out paho's 1 s select
            self._watch.loop_stop()
            self.server.stop()

    def _loop(self) -> str:
        while True:
            r = self.rollouts.get(self.rid)
            if r["state"] == "aborted":
                return "aborted"
            rows = self._rows()
            while not self.events.empty():
                node, leaf, raw = self.events.get()
                self._apply(node, leaf, raw, rows)
                rows = self._rows()
            now = time.time()
            for n in rows.values():
                if n["state"] in IN_FLIGHT and now - n["since"] > self.plan.timeout:
                    why = f"no progress for {self.plan.timeout:g} s in state {n['state']}"
                    self._set(n["node"], "failed", result=N.R_CONN_LOST, detail=why)
            rows = self._rows()
            counts = summary(list(rows.values()))
            if self.progress:
                self.progress(counts)
            settled = sum(counts.get(s, 0) for s in SETTLED)
            bad = counts.get("failed", 0) + counts.get("refused", 0)
            if settled and bad / settled > self.plan.max_failures:
                why = f"{bad} of {settled} settled nodes failed (max {self.plan.max_failures:.0%})"
                self.rollouts.set_state(self.rid, "halted", why)
                return "halted"
            # The health window: after the last node of a wave settled, nothing more is
            # offered for a while, and a node seen back on its old version fails.
            last = max((n["updated"] for n in rows.values() if n["state"] in SETTLED), default=0)
            quiet = now - last >= self.plan.health_window
            open_waves = sorted({n["wave"] for n in rows.values() if n["state"] not in SETTLED})
            if not open_waves:
                if quiet:
                    self.rollouts.set_state(self.rid, "done", f"{counts.get('done', 0)} updated")
                    return "done"
                self._wait(self.plan.health_window - (now - last))
                continue
            wave = open_waves[0]
            pending = [n for n in rows.values() if n["wave"] == wave and n["state"] == "pending"]
            earlier = any(n["wave"] < wave for n in rows.values())
            if (
                pending
                and r["state"] == "running"
                and (quiet or not earlier or self._started(wave, rows))
            ):
                self._offer(self.store.nodes(ids=[n["node"] for n in pending]))
                continue
            self._wait(1.0)

    def _rows(self) -> dict[str, dict[str, Any]]:
        return {n["node"]: n for n in self.rollouts.nodes(self.rid)}

    @staticmethod
    def _started(wave: int, rows: dict[str, dict[str, Any]]) -> bool:
        # Some of the wave were offered already (a resume): the rest need not wait again.
        return any(n["wave"] == wave and n["state"] != "pending" for n in rows.values())

    def _wait(self, seconds: float) -> None:
        self._wake.wait(max(0.05, min(seconds, 1.0)))
        self._wake.clear()

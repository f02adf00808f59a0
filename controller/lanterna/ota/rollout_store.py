"""The rollout tables of the store (``rollouts``, ``rollout_nodes``; migration 2): a
rollout and every node's progress, so a controller that stops mid-rollout resumes
without offering a settled node again. The SQL runs on both of the store's backends
(SQLite, PostgreSQL): ``?`` placeholders, RETURNING for new ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from lanterna.ota.plan import Plan, RolloutError
from lanterna.store import Store


class Rollouts:
    """The rollout tables of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def create(
        self,
        bundle: str,
        bundle_id: str,
        version: str,
        size: int,
        target: dict[str, Any],
        plan: Plan,
        waves: dict[str, int],
    ) -> int:
        now = time.time()
        with self.store.tx() as db:
            active = db.execute(
                "SELECT id, state FROM rollouts WHERE state IN ('running', 'paused')"
            ).fetchone()
            if active:
                raise RolloutError(
                    f"rollout {active['id']} is {active['state']}: abort it or let it finish first"
                )
            rid = int(
                db.execute(
                    "INSERT INTO rollouts (bundle, bundle_id, version, size, target, plan,"
                    " state, created, updated) VALUES (?,?,?,?,?,?,'running',?,?) RETURNING id",
                    (
                        bundle,
                        bundle_id,
                        version,
                        size,
                        json.dumps(target),
                        _plan_json(plan),
                        now,
                        now,
                    ),
                ).fetchone()[0]
            )
            db.executemany(
                "INSERT INTO rollout_nodes (rollout, node, wave, state, since, updated)"
                " VALUES (?,?,?,'pending',?,?)",
                [(rid, n, w, now, now) for n, w in waves.items()],
            )
        return rid

    def refuse(self, bundle: str, why: str) -> int:
        """A bundle the controller would not offer (malformed, tampered, signed by another
        key): recorded as a rollout that never started, so `ota status` shows why."""
        now = time.time()
        with self.store.tx() as db:
            row = db.execute(
                "INSERT INTO rollouts (bundle, bundle_id, version, size, target, plan, state,"
                " detail, created, updated) VALUES (?, '', '?', 0, '{}', '{}', 'refused', ?,"
                " ?, ?) RETURNING id",
                (bundle, why, now, now),
            ).fetchone()
            return int(row[0])

    def get(self, rid: int | None = None) -> dict[str, Any]:
        """A rollout by id; without one, the active one, else the latest."""
        if rid is not None:
            r = self.db.execute("SELECT * FROM rollouts WHERE id=?", (rid,)).fetchone()
        else:
            r = self.db.execute(
                "SELECT * FROM rollouts ORDER BY"
                " CASE WHEN state IN ('running', 'paused') THEN 0 ELSE 1 END, id DESC"
            ).fetchone()
        if r is None:
            raise RolloutError(f"no rollout {rid}" if rid is not None else "no rollouts yet")
        out = dict(r)
        out["target"] = json.loads(out["target"])
        out["plan"] = json.loads(out["plan"])
        return out

    def plan(self, r: dict[str, Any]) -> Plan:
        p = dict(r["plan"])
        p["waves"] = tuple(p["waves"])
        return Plan(**p)

    def nodes(self, rid: int) -> list[dict[str, Any]]:
        q = "SELECT * FROM rollout_nodes WHERE rollout=? ORDER BY wave, node"
        return [dict(r) for r in self.db.execute(q, (rid,))]

    def set_state(self, rid: int, state: str, detail: str | None = None) -> None:
        with self.store.tx() as db:
            db.execute(
                "UPDATE rollouts SET state=?, detail=coalesce(?, detail), updated=? WHERE id=?",
                (state, detail, time.time(), rid),
            )

    def set_node(self, rid: int, node: str, state: str, **fields: Any) -> None:
        now = time.time()
        cols = ["state=?", "updated=?", "since=CASE WHEN state=? THEN since ELSE ? END"]
        vals: list[Any] = [state, now, state, now]
        for k in ("progress", "result", "detail", "from_version"):
            if k in fields:
                cols.append(f"{k}=?")
                vals.append(fields[k])
        with self.store.tx() as db:
            db.execute(
                f"UPDATE rollout_nodes SET {', '.join(cols)} WHERE rollout=? AND node=?",
                (*vals, rid, node),
            )

    def requeue(self, rid: int) -> int:
        """On resume: every node in flight is offered again (idempotent on the node)."""
        with self.store.tx() as db:
            cur = db.execute(
                "UPDATE rollout_nodes SET state='pending', since=? WHERE rollout=? AND state IN"
                " ('offered', 'downloading', 'installing', 'trial')",
                (time.time(), rid),
            )
            return cur.rowcount


def _plan_json(plan: Plan) -> str:
    d = asdict(plan)
    d["waves"] = list(plan.waves)
    return json.dumps(d)


def summary(nodes: Sequence[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in nodes:
        out[n["state"]] = out.get(n["state"], 0) + 1
    return out

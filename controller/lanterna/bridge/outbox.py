"""The bridge's durable outbox, in the store (migration 5), per platform (``target``: its
URL and tenant), so nothing is lost when the platform or the bridge is down.

- ``queue`` compares each attribute of the entities given with what the platform last
  took (``ngsi_sent``) and with what already waits; a changed one is queued, replacing
  an older value of the same attribute still waiting (the newest measurement
  supersedes the older: the outbox holds at most one value per entity attribute, so it
  is bounded by the fleet, whatever the outage's length).
- ``pending`` gives what waits, whole entities (all of an entity's waiting attributes
  together), oldest first.
- ``sent`` removes what the platform took, unless a newer value was queued meanwhile;
  ``refused`` does the same for what it refused with a 4xx, and remembers the refused
  value so it is not queued again until it changes; ``retry`` counts a failed try.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanterna.store import Store

CHUNK = 500


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:32]


@dataclass
class Pending:
    """One entity's waiting attributes: (attr, body, digest) each."""

    entity: str
    etype: str
    attrs: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    tries: int = 0

    def body(self) -> dict[str, Any]:
        e: dict[str, Any] = {"id": self.entity, "type": self.etype}
        for k, (a, _) in self.attrs.items():
            e[k] = a
        return e


class Outbox:
    def __init__(self, store: Store, target: str) -> None:
        self.store = store
        self.target = target

    def queue(self, entities: Iterable[dict[str, Any]]) -> tuple[int, int]:
        """Queue what changed in these entities; -> (entities, attributes) queued."""
        n_ent = n_attr = 0
        batch: list[dict[str, Any]] = []
        for e in entities:
            batch.append(e)
            if len(batch) >= CHUNK:
                a, b = self._queue(batch)
                n_ent, n_attr = n_ent + a, n_attr + b
                batch = []
        if batch:
            a, b = self._queue(batch)
            n_ent, n_attr = n_ent + a, n_attr + b
        return n_ent, n_attr

    def _queue(self, entities: Sequence[dict[str, Any]]) -> tuple[int, int]:
        ids = [e["id"] for e in entities]
        known = self._digests("ngsi_sent", ids)
        waiting = self._digests("ngsi_outbox", ids)
        now = time.time()
        rows = []
        changed = set()
        for e in entities:
            for k, v in e.items():
                if k in ("id", "type", "@context"):
                    continue
                body = json.dumps(v, sort_keys=True, separators=(",", ":"))
                d = digest(body)
                key = (e["id"], k)
                if known.get(key) == d or waiting.get(key) == d:
                    continue
                rows.append((self.target, e["id"], e["type"], k, body, d, now))
                changed.add(e["id"])
        if rows:
            with self.store.tx() as db:
                db.executemany(
                    "INSERT INTO ngsi_outbox (target, entity, etype, attr, body, digest, queued)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (target, entity, attr) DO UPDATE SET"
                    " body=excluded.body, digest=excluded.digest, queued=excluded.queued",
                    rows,
                )
        return len(changed), len(rows)

    def _digests(self, table: str, ids: Sequence[str]) -> dict[tuple[str, str], str]:
        q = (
            f"SELECT entity, attr, digest FROM {table} WHERE target=? AND entity IN"
            f" ({','.join('?' * len(ids))})"
        )
        return {(r[0], r[1]): r[2] for r in self.store.db.execute(q, [self.target, *ids])}

    def pending(self, limit: int) -> list[Pending]:
        """Up to `limit` entities with waiting attributes, those queued first first."""
        rows = list(
            self.store.db.execute(
                "SELECT entity, MIN(queued) AS q FROM ngsi_outbox WHERE target=?"
                " GROUP BY entity ORDER BY q, entity LIMIT ?",
                (self.target, limit),
            )
        )
        if not rows:
            return []
        ids = [r[0] for r in rows]
        out = {i: Pending(i, "") for i in ids}
        q = (
            "SELECT entity, etype, attr, body, digest, tries FROM ngsi_outbox WHERE target=?"
            f" AND entity IN ({','.join('?' * len(ids))})"
        )
        for r in self.store.db.execute(q, [self.target, *ids]):
            p = out[r[0]]
            p.etype = r[1]
            p.attrs[r[2]] = (json.loads(r[3]), r[4])
            p.tries = max(p.tries, int(r[5]))
        return [out[i] for i in ids]

    def count(self) -> int:
        r = self.store.db.execute(
            "SELECT COUNT(DISTINCT entity) FROM ngsi_outbox WHERE target=?", (self.target,)
        ).fetchone()
        return int(r[0])

    def sent(self, items: Sequence[Pending]) -> None:
        self._settle(items, "sent")

    def refused(self, items: Sequence[Pending]) -> None:
        self._settle(items, "refused")

    def _settle(self, items: Sequence[Pending], outcome: str) -> None:
        if not items:
            return
        now = time.time()
        done = [(self.target, p.entity, k, d) for p in items for k, (_, d) in p.attrs.items()]
        with self.store.tx() as db:
            db.executemany(
                "DELETE FROM ngsi_outbox WHERE target=? AND entity=? AND attr=? AND digest=?",
                done,
            )
            db.executemany(
                "INSERT INTO ngsi_sent (target, entity, attr, digest, outcome, at)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT (target, entity, attr) DO UPDATE SET"
                " digest=excluded.digest, outcome=excluded.outcome, at=excluded.at",
                [(t, e, a, d, outcome, now) for t, e, a, d in done],
            )

    def retry(self, items: Sequence[Pending]) -> None:
        if not items:
            return
        with self.store.tx() as db:
            db.executemany(
                "UPDATE ngsi_outbox SET tries=tries+1 WHERE target=? AND entity=?",
                [(self.target, p.entity) for p in items],
            )

    def forget(self) -> None:
        """Forget what the platform was sent (a resync: everything is queued again)."""
        with self.store.tx() as db:
            db.execute("DELETE FROM ngsi_sent WHERE target=?", (self.target,))

    def mark(self) -> tuple[float | None, float | None]:
        """(last_seen read up to, when the last full sync ran)."""
        r = self.store.db.execute(
            "SELECT seen, full_at FROM ngsi_marks WHERE target=?", (self.target,)
        ).fetchone()
        return (None, None) if r is None else (float(r[0]), float(r[1]))

    def set_mark(self, seen: float, full_at: float) -> None:
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO ngsi_marks (target, seen, full_at) VALUES (?,?,?)"
                " ON CONFLICT (target) DO UPDATE SET seen=excluded.seen, full_at=excluded.full_at",
                (self.target, seen, full_at),
            )

    def stats(self) -> dict[str, int]:
        rows = self.store.db.execute(
            "SELECT outcome, COUNT(*) FROM ngsi_sent WHERE target=? GROUP BY outcome",
            (self.target,),
        )
        out = {"sent": 0, "refused": 0}
        for r in rows:
            out[str(r[0])] = int(r[1])
        out["pending_entities"] = self.count()
        return out

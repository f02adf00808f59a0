"""What the gateway keeps in the store (migration 7): the CMS's objects as it wrote them,
each node's calendar and last override, the loggers' entries until a report takes them,
and the requests to the CMS until it takes them. Every write is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from lanterna.store import Store

KINDS = ("calendar", "program", "logger", "group")


def _dumps(o: Any) -> str:
    return json.dumps(o, sort_keys=True, separators=(",", ":"))


class State:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- objects -------------------------------------------------------------------------

    def get(self, kind: str, oid: str) -> dict[str, Any] | None:
        r = self.store.tuples("SELECT body FROM talq_objects WHERE kind=? AND id=?", (kind, oid))
        return json.loads(r[0][0]) if r else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        rows = self.store.tuples("SELECT body FROM talq_objects WHERE kind=? ORDER BY id", (kind,))
        return [json.loads(r[0]) for r in rows]

    def ids(self, kind: str) -> list[str]:
        return [
            r[0] for r in self.store.tuples("SELECT id FROM talq_objects WHERE kind=?", (kind,))
        ]

    def put(self, kind: str, objs: Sequence[tuple[str, dict[str, Any]]]) -> None:
        now = time.time()
        with self.store.tx() as db:
            for oid, body in objs:
                db.execute(
                    "INSERT INTO talq_objects (kind, id, body, changed) VALUES (?,?,?,?)"
                    " ON CONFLICT (kind, id) DO UPDATE SET body=excluded.body,"
                    " changed=excluded.changed",
                    (kind, oid, _dumps(body), now),
                )

    def delete(self, kind: str, oid: str) -> None:
        with self.store.tx() as db:
            db.execute("DELETE FROM talq_objects WHERE kind=? AND id=?", (kind, oid))
            if kind == "logger":
                db.execute("DELETE FROM talq_log WHERE logger=?", (oid,))
                db.execute("DELETE FROM talq_marks WHERE logger=?", (oid,))

    # -- calendars on nodes --------------------------------------------------------------

    def assigned(self, nodes: Sequence[str] | None = None) -> dict[str, str]:
        q, args = "SELECT node, calendar FROM talq_assign", []  # type: tuple[str, list[Any]]
        if nodes is not None:
            if not nodes:
                return {}
            q += f" WHERE node IN ({','.join('?' * len(nodes))})"
            args = list(nodes)
        return {r[0]: r[1] for r in self.store.tuples(q, args)}

    def users_of(self, calendar: str) -> list[str]:
        rows = self.store.tuples("SELECT node FROM talq_assign WHERE calendar=?", (calendar,))
        return [r[0] for r in rows]

    def assign(
        self, nodes: Sequence[str], calendar: str, schedule: int | None, results: dict[str, str]
    ) -> None:
        now = time.time()
        with self.store.tx() as db:
            for n in nodes:
                db.execute(
                    "INSERT INTO talq_assign (node, calendar, schedule, result, at)"
                    " VALUES (?,?,?,?,?) ON CONFLICT (node) DO UPDATE SET"
                    " calendar=excluded.calendar, schedule=excluded.schedule,"
                    " result=excluded.result, at=excluded.at",
                    (n, calendar, schedule, results.get(n), now),
                )

    # -- overrides -----------------------------------------------------------------------

    def overrides(self, nodes: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not nodes:
            return {}
        rows = self.store.tuples(
            "SELECT node, command, at, feedback, result FROM talq_overrides"
            f" WHERE node IN ({','.join('?' * len(nodes))})",
            list(nodes),
        )
        return {
            r[0]: {
                "command": json.loads(r[1]),
                "at": float(r[2]),
                "feedback": json.loads(r[3]) if r[3] else None,
                "result": r[4],
            }
            for r in rows
        }

    def set_override(self, node: str, command: dict[str, Any], at: float) -> None:
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO talq_overrides (node, command, at, cid, feedback, result)"
                " VALUES (?,?,?,NULL,NULL,NULL) ON CONFLICT (node) DO UPDATE SET"
                " command=excluded.command, at=excluded.at, cid=NULL, feedback=NULL,"
                " result=NULL",
                (node, _dumps(command), at),
            )

    def override_done(
        self, node: str, at: float, cid: str | None, feedback: dict[str, Any] | None, result: str
    ) -> None:
        """The outcome of the override sent at `at` (a newer one is left alone)."""
        with self.store.tx() as db:
            db.execute(
                "UPDATE talq_overrides SET cid=?, feedback=?, result=? WHERE node=? AND at=?",
                (cid, _dumps(feedback) if feedback is not None else None, result, node, at),
            )

    # -- loggers -------------------------------------------------------------------------

    def mark(self, logger: str) -> tuple[int, float | None, float | None] | None:
        r = self.store.tuples(
            "SELECT events_after, sampled, reported FROM talq_marks WHERE logger=?", (logger,)
        )
        if not r:
            return None
        return int(r[0][0]), r[0][1], r[0][2]

    def set_mark(
        self, db: Any, logger: str, events_after: int, sampled: float | None, reported: float | None
    ) -> None:
        db.execute(
            "INSERT INTO talq_marks (logger, events_after, sampled, reported) VALUES (?,?,?,?)"
            " ON CONFLICT (logger) DO UPDATE SET events_after=excluded.events_after,"
            " sampled=excluded.sampled, reported=excluded.reported",
            (logger, events_after, sampled, reported),
        )

    def add_entries(self, db: Any, logger: str, entries: Sequence[dict[str, Any]]) -> None:
        now = time.time()
        db.executemany(
            "INSERT INTO talq_log (logger, entry, at) VALUES (?,?,?)",
            [(logger, _dumps(e), now) for e in entries],
        )

    def entries(self, logger: str, limit: int = 10000) -> list[tuple[int, dict[str, Any], float]]:
        rows = self.store.tuples(
            "SELECT id, entry, at FROM talq_log WHERE logger=? ORDER BY id LIMIT ?",
            (logger, limit),
        )
        return [(int(r[0]), json.loads(r[1]), float(r[2])) for r in rows]

    def take_entries(self, db: Any, logger: str, upto: int) -> None:
        db.execute("DELETE FROM talq_log WHERE logger=? AND id<=?", (logger, upto))

    def count_entries(self, logger: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM talq_log" + (" WHERE logger=?" if logger else "")
        return int(self.store.tuples(q, (logger,) if logger else ())[0][0])

    # -- the outbox to the CMS -----------------------------------------------------------

    def queue(self, db: Any, cms: str, method: str, path: str, body: Any) -> None:
        db.execute(
            "INSERT INTO talq_outbox (cms, method, path, body, queued) VALUES (?,?,?,?,?)",
            (cms, method, path, json.dumps(body, separators=(",", ":")), time.time()),
        )

    def queued(self, cms: str, limit: int = 50) -> list[tuple[int, str, str, Any, int]]:
        rows = self.store.tuples(
            "SELECT id, method, path, body, tries FROM talq_outbox WHERE cms=? ORDER BY id LIMIT ?",
            (cms, limit),
        )
        return [(int(r[0]), r[1], r[2], json.loads(r[3]), int(r[4])) for r in rows]

    def sent(self, oid: int) -> None:
        with self.store.tx() as db:
            db.execute("DELETE FROM talq_outbox WHERE id=?", (oid,))

    def retried(self, oid: int) -> None:
        with self.store.tx() as db:
            db.execute("UPDATE talq_outbox SET tries=tries+1 WHERE id=?", (oid,))

    def outbox_count(self, cms: str) -> int:
        return int(self.store.tuples("SELECT COUNT(*) FROM talq_outbox WHERE cms=?", (cms,))[0][0])

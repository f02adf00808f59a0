"""The audit log (the ``audit`` table of the store; migration 6): who did what to which
nodes, from where, and what came of it; one record per command from the web console
and the CLI (commands to nodes, schedule pushes, rollouts, operator changes).

A record keeps the arguments of a command, never a secret: a schedule push keeps the
schedule's id and sha256 (``schedule_args``), not its body; an operator change keeps the
role, never a password. The SQL runs on both of the store's backends.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from lanterna.errors import malformed
from lanterna.store import Store

VIA = ("web", "cli", "talq")
# argument names that would hold a secret: refused, so no caller stores one by mistake
SECRET_ARGS = frozenset({"password", "hash", "key", "key_hex", "secret", "token"})
DETAIL_MAX = 500


class Audit:
    """The ``audit`` table of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def record(
        self,
        who: str,
        via: str,
        action: str,
        target: str,
        nodes: Sequence[str],
        args: dict[str, Any],
        result: str,
        detail: str | None = None,
    ) -> int:
        if via not in VIA:
            raise malformed(f"audit: via {via!r}: one of {', '.join(VIA)}")
        secret = SECRET_ARGS.intersection(args)
        if secret:
            raise malformed(f"audit: args must not hold a secret ({', '.join(sorted(secret))})")
        with self.store.tx() as db:
            row = db.execute(
                "INSERT INTO audit (at, who, via, action, target, nodes, args, result, detail)"
                " VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
                (
                    time.time(),
                    who,
                    via,
                    action,
                    target,
                    json.dumps(list(nodes)),
                    json.dumps(args, sort_keys=True, default=str),
                    result,
                    detail,
                ),
            ).fetchone()
        return int(row[0])

    def list(
        self,
        limit: int = 200,
        who: str | None = None,
        since: float | None = None,
        until: float | None = None,
        action: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest records first. `action` is one action ("dim") or, without a dot, a
        family of them too ("rollout" gives rollout.pause, rollout.abort, ...)."""
        if limit < 1:
            raise malformed(f"audit: limit {limit}: at least 1")
        cond: list[str] = []
        vals: list[Any] = []
        if who is not None:
            cond.append("who=?")
            vals.append(who)
        if since is not None:
            cond.append("at>=?")
            vals.append(since)
        if until is not None:
            cond.append("at<?")
            vals.append(until)
        if action is not None:
            cond.append("(action=? OR action LIKE ? ESCAPE '\\')")
            esc = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            vals += [action, esc + ".%"]
        where = f" WHERE {' AND '.join(cond)}" if cond else ""
        q = f"SELECT * FROM audit{where} ORDER BY at DESC, id DESC LIMIT ?"
        out = []
        for r in self.db.execute(q, (*vals, limit)):
            d = dict(r)
            d["nodes"], d["args"] = json.loads(d["nodes"]), json.loads(d["args"])
            d["id"] = int(d["id"])
            out.append(d)
        return out


def outcome_result(outs: Sequence[Any]) -> str:
    """What a command to nodes came to, as the CLI's summary line says it:
    "3 of 3 ok", "1 of 3 ok, 2 timeout" (lanterna.fleet.outcome statuses)."""
    by: dict[str, int] = {}
    for x in outs:
        if x.status != "ok":
            by[x.status] = by.get(x.status, 0) + 1
    failed = sum(by.values())
    rest = "".join(f", {v} {k}" for k, v in sorted(by.items()))
    return f"{len(outs) - failed} of {len(outs)} ok{rest}"


def outcome_detail(outs: Sequence[Any]) -> str | None:
    """The nodes that failed and why, briefly; None when every one is ok."""
    bad = [
        f"{x.node} {x.status}" + (f" ({x.error})" if x.error else "")
        for x in outs
        if x.status != "ok"
    ]
    text = "; ".join(bad)
    return None if not bad else text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 3] + "..."


def target_of(
    node_ids: Sequence[str] = (),
    group: str | None = None,
    site: str | None = None,
    all_nodes: bool = False,
) -> str:
    """A selection of nodes, briefly: "node greenwich-004", "group high-street",
    "site milan", "all"."""
    if node_ids:
        ids = list(dict.fromkeys(node_ids))
        if len(ids) == 1:
            return f"node {ids[0]}"
        more = f" +{len(ids) - 3}" if len(ids) > 3 else ""
        return f"nodes {', '.join(ids[:3])}{more}"
    if group:
        return f"group {group}"
    if site:
        return f"site {site}"
    return "all" if all_nodes else "none"


def schedule_args(obj: dict[str, Any]) -> dict[str, Any]:
    """What the log keeps of a pushed schedule: its id, version and the sha256 of its
    canonical body (as lanterna.cli.schedule stores it), not the body."""
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    out = {"schedule": obj.get("id"), "sha256": hashlib.sha256(body.encode()).hexdigest()}
    if "version" in obj:
        out["version"] = obj["version"]
    return out


def cli_who() -> str:
    """Who runs the CLI: the OS user."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment nor the password database
        return "unknown"

"""The controller's store: SQLite in WAL mode, schema by numbered migrations.

One file holds the fleet (sites, groups, nodes with their key material), what the nodes
said (status, state, telemetry, events) and what the controller did (commands with
their counters and results, schedules with versions). Every connection runs the pending
migrations first, each in its own transaction, so an old database is brought up to date
and a half-applied migration never exists.

Where the file is: the global option ``--db``, else ``$LANTERNA_HOME/lanterna.db``, else
``~/.local/share/lanterna/lanterna.db`` (XDG_DATA_HOME honoured). Key material is
stored with the file at 0600: a store is a secret.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanterna.errors import EXIT_STORE, EXIT_UNKNOWN, LanternaError
from lanterna.store.migrations import MIGRATIONS, statements

DB_NAME = "lanterna.db"


class StoreError(LanternaError):
    """A store that cannot be opened or an operation that names what does not exist."""

    exit_code = EXIT_STORE


class UnknownNode(StoreError):
    exit_code = EXIT_UNKNOWN


class UnknownGroup(StoreError):
    exit_code = EXIT_UNKNOWN


def default_path() -> Path:
    home = os.environ.get("LANTERNA_HOME")
    if home:
        return Path(home) / DB_NAME
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "lanterna" / DB_NAME


@dataclass(frozen=True)
class Node:
    id: str
    site: str
    board: str
    lat: float | None
    lon: float | None
    key: bytes = field(repr=False)
    rated_w: float
    coap_host: str | None
    coap_port: int | None
    groups: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        """The node without its key: what views and --json show."""
        return {
            "node": self.id,
            "site": self.site,
            "board": self.board,
            "lat": self.lat,
            "lon": self.lon,
            "rated_w": self.rated_w,
            "coap": f"{self.coap_host}:{self.coap_port}" if self.coap_port else None,
            "groups": list(self.groups),
        }


def _iso_to_epoch(ts: Any) -> float | None:
    from datetime import datetime

    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            if new:
                os.chmod(self.path, 0o600)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: {e}") from None
        except OSError as e:
            raise StoreError(f"{self.path}: {e.strerror or e}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        have = self.version
        if have > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {have} is newer than this lanterna "
                f"({len(MIGRATIONS)}): upgrade lanterna"
            )
        for n in range(have, len(MIGRATIONS)):
            with self.tx():
                for stmt in statements(MIGRATIONS[n]):
                    self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version = {n + 1}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue, never deadlock)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- sites, nodes, groups ------------------------------------------------------------

    def put_site(self, name: str, lat: float, lon: float, tz: str) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO sites VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                "lat=excluded.lat, lon=excluded.lon, tz=excluded.tz",
                (name, lat, lon, tz),
            )

    def sites(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM sites ORDER BY name")]

    def site(self, name: str) -> dict[str, Any] | None:
        r = self.db.execute("SELECT * FROM sites WHERE name=?", (name,)).fetchone()
        return dict(r) if r else None

    def put_node(
        self,
        node: str,
        site: str,
        board: str,
        key: bytes,
        lat: float | None = None,
        lon: float | None = None,
        rated_w: float = 50.0,
        coap_host: str | None = None,
        coap_port: int | None = None,
    ) -> None:
        """Add a node, or update one: a changed key resets its command counter."""
        if self.site(site) is None:
            raise StoreError(f"unknown site {site!r}: add it first")
        with self.tx() as db:
            # SET reads the row as it was: a new key (the old key_hex differs) restarts
            # the counter; the same key keeps it.
            db.execute(
                "INSERT INTO nodes (id, site, board, lat, lon, key_hex, rated_w, coap_host,"
                " coap_port, ctr, added) VALUES (?,?,?,?,?,?,?,?,?,0,?)"
                " ON CONFLICT(id) DO UPDATE SET site=excluded.site, board=excluded.board,"
                " lat=excluded.lat, lon=excluded.lon, rated_w=excluded.rated_w,"
                " coap_host=excluded.coap_host, coap_port=excluded.coap_port,"
                " key_hex=excluded.key_hex,"
                " ctr=CASE WHEN key_hex=excluded.key_hex THEN ctr ELSE 0 END",
                (
                    node,
                    site,
                    board,
                    lat,
                    lon,
                    key.hex(),
                    rated_w,
                    coap_host,
                    coap_port,
                    time.time(),
                ),
            )

    def remove_node(self, node: str) -> None:
        with self.tx() as db:
            if db.execute("DELETE FROM nodes WHERE id=?", (node,)).rowcount == 0:
                raise UnknownNode(f"unknown node {node!r}")
            db.execute("DELETE FROM node_status WHERE node=?", (node,))

    def _node(self, r: sqlite3.Row) -> Node:
        groups = tuple(
            g[0]
            for g in self.db.execute(
                "SELECT grp FROM group_members WHERE node=? ORDER BY grp", (r["id"],)
            )
        )
        return Node(
            r["id"],
            r["site"],
            r["board"],
            r["lat"],
            r["lon"],
            bytes.fromhex(r["key_hex"]),
            r["rated_w"],
            r["coap_host"],
            r["coap_port"],
            groups,
        )

    def node(self, node: str) -> Node:
        r = self.db.execute("SELECT * FROM nodes WHERE id=?", (node,)).fetchone()
        if r is None:
            raise UnknownNode(f"unknown node {node!r}")
        return self._node(r)

    def nodes(
        self,
        site: str | None = None,
        group: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Node]:
        """Nodes by site, group or id (each filter narrows); unknown names raise."""
        q, args = "SELECT * FROM nodes WHERE 1", []  # type: tuple[str, list[Any]]
        if site is not None:
            if self.site(site) is None:
                raise StoreError(f"unknown site {site!r}")
            q += " AND site=?"
            args.append(site)
        if group is not None:
            if not self.db.execute("SELECT 1 FROM groups WHERE name=?", (group,)).fetchone():
                raise UnknownGroup(f"unknown group {group!r}")
            q += " AND id IN (SELECT node FROM group_members WHERE grp=?)"
            args.append(group)
        rows = [self._node(r) for r in self.db.execute(q + " ORDER BY id", args)]
        if ids is not None:
            have = {n.id for n in rows}
            missing = [i for i in ids if i not in have]
            if missing:
                raise UnknownNode(f"unknown node {missing[0]!r}")
            rows = [n for n in rows if n.id in set(ids)]
        return rows

    def put_group(self, name: str, description: str = "") -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO groups VALUES (?,?) ON CONFLICT(name) DO UPDATE SET "
                "description=excluded.description",
                (name, description),
            )

    def remove_group(self, name: str) -> None:
        with self.tx() as db:
            if db.execute("DELETE FROM groups WHERE name=?", (name,)).rowcount == 0:
                raise UnknownGroup(f"unknown group {name!r}")

    def group_add(self, name: str, nodes: Iterable[str]) -> None:
        nodes = list(nodes)
        self.nodes(group=name, ids=None)  # the group exists
        for n in nodes:
            self.node(n)
        with self.tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO group_members VALUES (?,?)", [(name, n) for n in nodes]
            )

    def group_remove(self, name: str, nodes: Iterable[str]) -> None:
        self.nodes(group=name)
        with self.tx() as db:
            db.executemany(
                "DELETE FROM group_members WHERE grp=? AND node=?", [(name, n) for n in nodes]
            )

    def groups(self) -> list[dict[str, Any]]:
        return [
            {"group": r["name"], "description": r["description"], "nodes": r["n"]}
            for r in self.db.execute(
                "SELECT g.name, g.description, COUNT(m.node) AS n FROM groups g "
                "LEFT JOIN group_members m ON m.grp=g.name GROUP BY g.name ORDER BY g.name"
            )
        ]

    # -- commands ------------------------------------------------------------------------

    def next_ctrs(self, nodes: Sequence[str]) -> dict[str, int]:
        """Reserve the next command counter of each node (persisted before sending)."""
        out = {}
        with self.tx() as db:
            for n in nodes:
                r = db.execute("UPDATE nodes SET ctr=ctr+1 WHERE id=? RETURNING ctr", (n,))
                row = r.fetchone()
                if row is None:
                    raise UnknownNode(f"unknown node {n!r}")
                out[n] = int(row[0])
        return out

    def raise_ctr(self, node: str, at_least: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE nodes SET ctr=MAX(ctr, ?) WHERE id=?", (at_least, node))

    def add_commands(self, rows: Sequence[dict[str, Any]]) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany(
                "INSERT INTO commands (id, node, ctr, cmd, args, via, sent, status)"
                " VALUES (?,?,?,?,?,?,?,'pending')",
                [
                    (r["id"], r["node"], r["ctr"], r["cmd"], json.dumps(r["args"]), r["via"], now)
                    for r in rows
                ],
            )

    def finish_command(self, cid: str, status: str, result: dict[str, Any] | None) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE commands SET status=?, result=?, acked=? WHERE id=?",
                (status, json.dumps(result) if result is not None else None, time.time(), cid),
            )

    def commands(self, node: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        q = "SELECT * FROM commands" + (" WHERE node=?" if node else "")
        q += " ORDER BY sent DESC LIMIT ?"
        args: list[Any] = [node] if node else []
        return [dict(r) for r in self.db.execute(q, [*args, limit])]

    def add_schedule(self, name: str, body: str, sha256: str) -> int:
        with self.tx() as db:
            same = db.execute(
                "SELECT id FROM schedules WHERE name=? AND sha256=?", (name, sha256)
            ).fetchone()
            if same:
                return int(same[0])
            v = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM schedules WHERE name=?", (name,)
            ).fetchone()[0]
            cur = db.execute(
                "INSERT INTO schedules (name, version, sha256, body, created) VALUES (?,?,?,?,?)",
                (name, v, sha256, body, time.time()),
            )
            return int(cur.lastrowid or 0)

    def schedule_pushed(self, schedule: int, node: str, command: str) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO schedule_pushes VALUES (?,?,?)", (schedule, node, command)
            )

    # -- ingest --------------------------------------------------------------------------

    def ingest(self, msgs: Sequence[tuple[str, str, bytes, float]]) -> int:
        """Store a batch of (node, leaf, payload, received) in one transaction; returns the
        rows written. A payload that is not what its leaf carries is skipped (counted by
        the caller); nothing in a batch is half-written."""
        written = 0
        with self.tx() as db:
            for node, leaf, payload, received in msgs:
                written += self._ingest_one(db, node, leaf, payload, received)
        return written

    def _ingest_one(
        self, db: sqlite3.Connection, node: str, leaf: str, raw: bytes, received: float
    ) -> int:
        if leaf == "status":
            text = raw.decode("ascii", "replace")
            if text not in ("online", "offline"):
                return 0
            db.execute(
                "INSERT INTO node_status (node, online, status_at, last_seen) VALUES (?,?,?,?)"
                " ON CONFLICT(node) DO UPDATE SET online=excluded.online,"
                " status_at=excluded.status_at,"
                " last_seen=COALESCE(MAX(last_seen, excluded.last_seen), last_seen,"
                " excluded.last_seen)",
                (node, int(text == "online"), received, received if text == "online" else None),
            )
            return 1
        try:
            p = json.loads(raw)
        except ValueError:
            return 0
        if not isinstance(p, dict):
            return 0
        ts = _iso_to_epoch(p.get("ts")) or received
        if leaf == "state":
            db.execute(
                "INSERT INTO node_status (node, state, state_at, last_seen) VALUES (?,?,?,?)"
                " ON CONFLICT(node) DO UPDATE SET state=excluded.state,"
                " state_at=excluded.state_at, last_seen=excluded.last_seen",
                (node, json.dumps(p), ts, received),
            )
            return 1
        if leaf == "tele":
            e = p.get("energy")
            if not isinstance(e, dict):
                e = {}
            cur = db.execute(
                "INSERT OR IGNORE INTO telemetry"
                " (node, ts, received, level, kwh, power_w, payload)"
                " VALUES (?,?,?,?,?,?,?)",
                (node, ts, received, p.get("level"), e.get("kwh"), e.get("power_w"), json.dumps(p)),
            )
            if cur.rowcount == 0:
                return 0  # delivered again (after a crash before its ack): already here
            db.execute(
                "INSERT INTO node_status (node, tele, last_seen) VALUES (?,?,?)"
                " ON CONFLICT(node) DO UPDATE SET tele=excluded.tele,"
                " last_seen=excluded.last_seen",
                (node, json.dumps(p), received),
            )
            return 1
        if leaf == "event":
            db.execute(
                "INSERT INTO events (node, ts, received, event, payload) VALUES (?,?,?,?,?)",
                (node, ts, received, str(p.get("event")), json.dumps(p)),
            )
            return 1
        return 0

    # -- views ---------------------------------------------------------------------------

    def status(self, nodes: Sequence[Node]) -> list[dict[str, Any]]:
        """The fleet view of each node: online, level, mode, firmware, last seen, faults."""
        out = []
        for n in nodes:
            r = self.db.execute("SELECT * FROM node_status WHERE node=?", (n.id,)).fetchone()
            state = json.loads(r["state"]) if r and r["state"] else {}
            tele = json.loads(r["tele"]) if r and r["tele"] else {}
            faults = list(state.get("faults") or [])
            for name, s in (tele.get("sensors") or {}).items():
                if isinstance(s, dict) and s.get("fault"):
                    faults.append(f"sensor:{name}")
            level = state.get("level") if state else tele.get("level")
            out.append(
                {
                    "node": n.id,
                    "site": n.site,
                    "groups": list(n.groups),
                    "online": None if not r or r["online"] is None else bool(r["online"]),
                    "level": level,
                    "mode": state.get("mode") or tele.get("source"),
                    "firmware": state.get("fw"),
                    "last_seen": r["last_seen"] if r else None,
                    "faults": faults,
                }
            )
        return out

    def telemetry_count(self, node: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM telemetry" + (" WHERE node=?" if node else "")
        return int(self.db.execute(q, (node,) if node else ()).fetchone()[0])

    def telemetry_since(self, after_id: int, node: str | None = None) -> list[sqlite3.Row]:
        q = "SELECT * FROM telemetry WHERE id>?" + (" AND node=?" if node else "")
        args: list[Any] = [after_id] + ([node] if node else [])
        return list(self.db.execute(q + " ORDER BY id", args))

    def energy_series(
        self, node: str, since: float, until: float
    ) -> list[tuple[float, float | None, int | None]]:
        """(ts, kwh, level) of a node's telemetry in [since, until], oldest first."""
        return [
            (r[0], r[1], r[2])
            for r in self.db.execute(
                "SELECT ts, kwh, level FROM telemetry WHERE node=? AND ts>=? AND ts<=? ORDER BY ts",
                (node, since, until),
            )
        ]

    def events(self, node: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = "SELECT * FROM events" + (" WHERE node=?" if node else "")
        q += " ORDER BY ts DESC, id DESC LIMIT ?"
        args: list[Any] = [node] if node else []
        return [dict(r) for r in self.db.execute(q, [*args, limit])]

    # -- appended by the fleet views (cli_fleet) -------------------------------------------

    def telemetry_last(self, limit: int, nodes: Sequence[str] | None = None) -> list[sqlite3.Row]:
        """The newest `limit` telemetry rows (of these nodes, if given), oldest first."""
        if nodes is not None and not nodes:
            return []
        q, args = "SELECT * FROM telemetry", []  # type: tuple[str, list[Any]]
        if nodes is not None:
            q += f" WHERE node IN ({','.join('?' * len(nodes))})"
            args.extend(nodes)
        rows = list(self.db.execute(q + " ORDER BY id DESC LIMIT ?", [*args, limit]))
        return rows[::-1]

    def fault_raises(self, node: str, faults: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The newest stored event that raised each of a node's faults (as named by
        `status`: a TALQ lamp event, or ``sensor:NAME`` for a ``sensorFault`` whose detail
        is ``NAME: reason``); a fault with no stored raise is absent."""
        want = set(faults)
        names = sorted({"sensorFault" if f.startswith("sensor:") else f for f in want})
        found: dict[str, dict[str, Any]] = {}
        if not names:
            return found
        cur = self.db.execute(
            f"SELECT * FROM events WHERE node=? AND event IN ({','.join('?' * len(names))})"
            " ORDER BY ts DESC, id DESC",
            [node, *names],
        )
        for r in cur:
            p = json.loads(r["payload"])
            if p.get("active") is not True:
                continue
            fault = r["event"]
            if fault == "sensorFault":
                fault = "sensor:" + str(p.get("detail", "")).split(":", 1)[0].strip()
            if fault in want and fault not in found:
                found[fault] = dict(r, payload=p)
                if len(found) == len(want):
                    break
        return found

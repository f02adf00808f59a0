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
from datetime import UTC
from pathlib import Path
from typing import Any

from lanterna.store import pg
from lanterna.store import tele as tele_codec
from lanterna.store.errors import PgError, StoreError, UnknownGroup, UnknownNode
from lanterna.store.migrations import MIGRATIONS, steps

# pg_advisory_xact_lock keys: migrations, and partition creation.
MIGRATION_LOCK = 0x4C414E01
PARTITION_LOCK = 0x4C414E02
DAY = 86400

DB_NAME = "lanterna.db"


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
    fast = _canonical_epoch(ts)
    if fast is not None:
        return fast
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_DAYS: dict[str, float | None] = {}  # "YYYY-MM-DD" -> its midnight UTC, or None if no date


def _canonical_epoch(ts: str) -> float | None:
    """The node's own form, ``YYYY-MM-DDTHH:MM:SSZ`` (lamp.telemetry), without datetime:
    the day looked up once, the time of day added (5.0 against 0.8 us a message). None for
    anything else, which the general parser takes."""
    if len(ts) != 20 or ts[10] != "T" or ts[19] != "Z" or ts[13] != ":" or ts[16] != ":":
        return None
    day = ts[:10]
    midnight = _DAYS.get(day, -1.0)
    if midnight == -1.0:
        from datetime import datetime

        try:
            midnight = datetime.fromisoformat(day + "T00:00:00+00:00").timestamp()
        except ValueError:
            midnight = None
        if len(_DAYS) > 4096:
            _DAYS.clear()
        _DAYS[day] = midnight
    hms = ts[11:13] + ts[14:16] + ts[17:19]
    if midnight is None or not (hms.isascii() and hms.isdigit()):
        return None
    h, m, sec = int(hms[:2]), int(hms[2:4]), int(hms[4:])
    if h > 23 or m > 59 or sec > 59:
        return None
    return midnight + h * 3600 + m * 60 + sec


class Store:
    def __init__(self, path: Path | str) -> None:
        self.pg = pg.is_url(path)
        self._parts: set[int] = set()  # PostgreSQL: the days whose partition exists
        self._pruned_at: float | None = None
        self._ret: int | None = None
        if self.pg:
            # path: the URL without its password (printed by serve, handed to workers)
            self.path: Any = pg.remember(pg.normalise(path))
            try:
                self.db: Any = pg.PgConn(self.path)
                self._migrate()
            except StoreError:
                self.close_quietly()
                raise
            return
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            if new:
                os.chmod(self.path, 0o600)
            self.db.row_factory = sqlite3.Row
            _wal(self.db)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: {e}") from None
        except OSError as e:
            raise StoreError(f"{self.path}: {e.strerror or e}") from None

    @property
    def backend(self) -> str:
        return "postgresql" if self.pg else "sqlite"

    def close(self) -> None:
        self.db.close()

    def close_quietly(self) -> None:
        try:
            self.db.close()
        except Exception:
            pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------

    @property
    def version(self) -> int:
        if self.pg:
            r = self.db.execute("SELECT version FROM schema_version").fetchone()
            return int(r[0]) if r else 0
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        if self.pg:
            # Several processes may open a new database at once: the lock makes one of
            # them migrate while the others wait, then find nothing to do.
            with self.tx() as db:
                db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                if db.execute("SELECT 1 FROM schema_version").fetchone() is None:
                    db.execute("INSERT INTO schema_version VALUES (0)")
        have = self.version
        if have > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {have} is newer than this lanterna "
                f"({len(MIGRATIONS)}): upgrade lanterna"
            )
        for n in range(have, len(MIGRATIONS)):
            with self.tx() as db:
                if self.pg:
                    db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
                if self.version > n:
                    continue  # another process ran it while this one waited
                for step in steps(MIGRATIONS[n], self.backend):
                    if isinstance(step, str) and step.startswith("migrate_"):
                        globals()[step](self, db)
                    elif callable(step):
                        step(db)
                    else:
                        db.execute(step)
                if self.pg:
                    db.execute("UPDATE schema_version SET version=?", (n + 1,))
                else:
                    db.execute(f"PRAGMA user_version = {n + 1}")

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, writers queue, never deadlock;
        PostgreSQL: row locks, taken in a fixed order by ingest)."""
        self.db.execute("BEGIN" if self.pg else "BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- sites, nodes, groups ------------------------------------------------------------

    def _in(self, col: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`col` among `values`, as one parameter whatever their number (a list as a
        PostgreSQL array, a JSON array on SQLite), planned as a hashed set, not a scan
        per value."""
        if self.pg:
            return f"{col} IN (SELECT unnest(CAST(? AS text[])))", [list(values)]
        return f"{col} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]

    def tuples(self, q: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a read (``?`` placeholders, SQL both backends run) as plain
        tuples: what a reader outside the store (the web console) unpacks."""
        return self._tuples(q, args)

    def _tuples(self, q: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows as plain tuples (a quarter of a million of them: no row objects)."""
        if self.pg:
            return self.db.tuples(q, args)
        cur = self.db.cursor()
        cur.row_factory = None
        return cur.execute(q, args).fetchall()

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
                " ctr=CASE WHEN nodes.key_hex=excluded.key_hex THEN nodes.ctr ELSE 0 END",
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

    def _members(self, ids: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
        """The groups of these nodes (of every node: None), in one query."""
        q, args = "SELECT node, grp FROM group_members", []  # type: tuple[str, list[Any]]
        if ids is not None:
            if not ids:
                return {}
            cond, args = self._in("node", ids)
            q += " WHERE " + cond
        out: dict[str, list[str]] = {}
        for r in self.db.execute(q, args):
            out.setdefault(r[0], []).append(r[1])
        return {n: tuple(sorted(g)) for n, g in out.items()}

    @staticmethod
    def _node_of(r: Any, groups: tuple[str, ...]) -> Node:
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
        return self._node_of(r, self._members([node]).get(node, ()))

    def _where(
        self,
        site: str | None,
        group: str | None,
        ids: Sequence[str] | None,
        state: str | Sequence[str] | None,
        after: str | None,
    ) -> tuple[str, list[Any]]:
        """The WHERE of a fleet selection over ``nodes n LEFT JOIN node_status ns``;
        unknown names raise."""
        q, args = "WHERE 1=1", []  # type: tuple[str, list[Any]]
        if site is not None:
            if self.site(site) is None:
                raise StoreError(f"unknown site {site!r}")
            q += " AND n.site=?"
            args.append(site)
        if group is not None:
            if not self.db.execute("SELECT 1 FROM groups WHERE name=?", (group,)).fetchone():
                raise UnknownGroup(f"unknown group {group!r}")
            q += " AND n.id IN (SELECT node FROM group_members WHERE grp=?)"
            args.append(group)
        if ids is not None:
            cond, more = self._in("n.id", ids)
            q += " AND " + cond
            args += more
        for st in [state] if isinstance(state, str) else state or ():
            if st not in STATES:
                raise StoreError(f"unknown state {st!r}: one of {', '.join(STATES)}")
            q += " AND " + STATES[st]
        if after is not None:
            q += " AND n.id > ?"
            args.append(after)
        return q, args

    def _check_ids(self, ids: Sequence[str] | None) -> None:
        if not ids:
            return
        cond, args = self._in("id", ids)
        have = {r[0] for r in self.db.execute("SELECT id FROM nodes WHERE " + cond, args)}
        missing = [i for i in ids if i not in have]
        if missing:
            raise UnknownNode(f"unknown node {missing[0]!r}")

    def nodes(
        self,
        site: str | None = None,
        group: str | None = None,
        ids: Sequence[str] | None = None,
        *,
        state: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Node]:
        """Nodes by site, group, id or state (each filter narrows; unknown names raise),
        in id order: `limit` of them after the node id `after` (keyset pagination: the
        next page starts after the last id of this one)."""
        self._check_ids(ids)
        where, args = self._where(site, group, ids, state, after)
        join = " LEFT JOIN node_status ns ON ns.node=n.id" if state else ""
        q = f"SELECT n.* FROM nodes n{join} {where} ORDER BY n.id"
        if limit is not None:
            q += " LIMIT ?"
            args.append(limit)
        rows = list(self.db.execute(q, args))
        whole = site is None and group is None and ids is None and state is None
        members = self._members(None if whole and limit is None else [r["id"] for r in rows])
        return [self._node_of(r, members.get(r["id"], ())) for r in rows]

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
        if not self.db.execute("SELECT 1 FROM groups WHERE name=?", (name,)).fetchone():
            raise UnknownGroup(f"unknown group {name!r}")
        self._check_ids(nodes)
        with self.tx() as db:
            db.executemany(
                "INSERT INTO group_members VALUES (?,?) ON CONFLICT DO NOTHING",
                [(name, n) for n in sorted(set(nodes))],
            )

    def group_remove(self, name: str, nodes: Iterable[str]) -> None:
        if not self.db.execute("SELECT 1 FROM groups WHERE name=?", (name,)).fetchone():
            raise UnknownGroup(f"unknown group {name!r}")
        with self.tx() as db:
            db.executemany(
                "DELETE FROM group_members WHERE grp=? AND node=?", [(name, n) for n in nodes]
            )

    def groups(self) -> list[dict[str, Any]]:
        return [
            {"group": r["name"], "description": r["description"], "nodes": int(r["n"])}
            for r in self.db.execute(
                "SELECT g.name, g.description, COUNT(m.node) AS n FROM groups g "
                "LEFT JOIN group_members m ON m.grp=g.name GROUP BY g.name ORDER BY g.name"
            )
        ]

    # -- commands ------------------------------------------------------------------------

    def next_ctrs(self, nodes: Sequence[str]) -> dict[str, int]:
        """Reserve the next command counter of each node (persisted before sending), in
        one statement however many nodes."""
        if not nodes:
            return {}
        cond, args = self._in("id", nodes)
        with self.tx() as db:
            rows = db.execute(
                f"UPDATE nodes SET ctr=ctr+1 WHERE {cond} RETURNING id, ctr", args
            ).fetchall()
            got = {r[0]: int(r[1]) for r in rows}
            missing = [n for n in nodes if n not in got]
            if missing:
                raise UnknownNode(f"unknown node {missing[0]!r}")  # rolled back: none moved
        return {n: got[n] for n in nodes}

    def raise_ctr(self, node: str, at_least: int) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE nodes SET ctr=CASE WHEN ctr < ? THEN ? ELSE ctr END WHERE id=?",
                (at_least, at_least, node),
            )

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
            r = db.execute(
                "INSERT INTO schedules (name, version, sha256, body, created) VALUES (?,?,?,?,?)"
                " RETURNING id",
                (name, v, sha256, body, time.time()),
            ).fetchone()
            return int(r[0])

    def schedule_pushed(self, schedule: int, node: str, command: str) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO schedule_pushes VALUES (?,?,?) ON CONFLICT DO NOTHING",
                (schedule, node, command),
            )

    # -- ingest --------------------------------------------------------------------------

    def ingest(self, msgs: Sequence[tuple[str, str, bytes, float]]) -> int:
        """Store a batch of (node, leaf, payload, received) in one transaction; returns the
        rows written. A payload that is not what its leaf carries is skipped (counted by
        the caller); nothing in a batch is half-written.

        Idempotent: a message delivered again (a worker killed before its ack) is the
        same telemetry row (node, ts) and the same event (node, ts, event), and never
        moves a node's status, state or last tele back in time. Telemetry and events go
        in as one multi-row insert each; the latest-state upserts, one row per node.
        Every statement takes its rows in key order, so two workers ingesting overlapping
        batches into one PostgreSQL database wait for each other, never deadlock."""
        b = _Batch()
        for node, leaf, payload, received in msgs:
            b.add(node, leaf, payload, received)
        cutoff = self._cutoff()
        if cutoff is not None:
            b.tele = [t for t in b.tele if t[1] >= cutoff]
        b.tele.sort(key=lambda t: (t[0], t[1]))
        b.events.sort(key=lambda e: (e[0], e[1], e[3]))
        if self.pg and b.tele:
            self._ensure_partitions({int(t[1] // DAY) for t in b.tele})
        try:
            written = self._ingest_tx(b)
        except PgError as e:
            if e.sqlstate != "23514" or not b.tele:  # no partition for a row
                raise
            self._parts.clear()  # dropped by another process's retention: make again
            self._ensure_partitions({int(t[1] // DAY) for t in b.tele})
            written = self._ingest_tx(b)
        if self._pruned_at is None or time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._auto_prune()
        return written

    def _ingest_tx(self, b: _Batch) -> int:
        with self.tx() as db:
            written = b.plain
            written += self._insert(db, "telemetry", TELE_COLS, b.tele, "(node, ts)")
            written += self._insert(db, "events", EVENT_COLS, b.events, "(node, ts, event)")
            latest = {n: (n, ts, *tele_columns(p), r) for n, (ts, p, r) in b.latest.items()}
            for sql, rows in (
                (STATUS_UPSERT, b.status),
                (STATE_UPSERT, b.state),
                (TELE_UPSERT, latest),
            ):
                if rows:
                    self._upsert(db, sql, [rows[n] for n in sorted(rows)])
        return written

    def _insert(
        self, db: Any, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]], key: str
    ) -> int:
        """Insert `rows`, those already there skipped; returns how many were new."""
        if not rows:
            return 0
        head = f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
        tail = f" ON CONFLICT {key} DO NOTHING"
        one = "(" + ",".join("?" * len(cols)) + ")"
        if not self.pg:
            before = db.total_changes
            db.executemany(head + one + tail, rows)
            return int(db.total_changes - before)
        order = key.strip("()")
        return int(db.insert_select(table, cols, rows, tail, order))

    def _upsert(self, db: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not self.pg:
            db.executemany(sql, rows)
            return
        values, rest = sql.split(" ON CONFLICT", 1)
        head = values.rsplit(" VALUES ", 1)[0]
        table, names = head.removeprefix("INSERT INTO ").split(" ", 1)
        cols = tuple(c.strip() for c in names.strip("()").split(","))
        db.insert_select(table, cols, rows, " ON CONFLICT" + rest, cols[0])

    # -- partitions and retention ------------------------------------------------------

    def _ensure_partitions(self, days: set[int]) -> None:
        """PostgreSQL: the day partitions of telemetry for `days`, made if missing. Each in
        its own short transaction under an advisory lock, so concurrent writers neither
        race on CREATE nor hold the parent's lock through an ingest."""
        missing = days - self._parts
        if not missing:
            return
        self._parts |= set(self.partitions())
        for d in sorted(missing - self._parts):
            with self.tx() as db:
                db.execute("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
                db.execute(_partition_sql(d))
            self._parts.add(d)

    def partitions(self) -> list[int]:
        """The days (epoch day numbers) that have a telemetry partition (PostgreSQL;
        SQLite has none: [])."""
        if not self.pg:
            return []
        rows = self.db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid=i.inhrelid"
            " WHERE i.inhparent = CAST('telemetry' AS regclass)"
        ).fetchall()
        return sorted(_day_of(r[0]) for r in rows if r[0].startswith("telemetry_p"))

    def setting(self, key: str) -> str | None:
        r = self.db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return None if r is None else str(r[0])

    def set_setting(self, key: str, value: str | None) -> None:
        with self.tx() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE key=?", (key,))
            else:
                db.execute(
                    "INSERT INTO settings VALUES (?,?) ON CONFLICT(key) DO UPDATE SET"
                    " value=excluded.value",
                    (key, value),
                )

    def retention(self) -> int | None:
        """Days of telemetry kept besides today (None: all of it)."""
        v = self.setting("retention_days")
        return int(v) if v is not None else None

    def set_retention(self, days: int | None) -> None:
        if days is not None and days < 1:
            raise StoreError(f"retention: {days} days: at least 1")
        self.set_setting("retention_days", None if days is None else str(days))
        self._pruned_at = None  # applied at the next ingest

    def _cutoff(self, now: float | None = None) -> float | None:
        days = self._retention_cache()
        if days is None:
            return None
        today = int((time.time() if now is None else now) // DAY)
        return float((today - days) * DAY)

    def _retention_cache(self) -> int | None:
        if self._pruned_at is None:
            self._ret = self.retention()
        return self._ret

    def prune(self, now: float | None = None) -> dict[str, Any]:
        """Apply the retention: telemetry before the cutoff (the start of the day
        `retention` days before today, UTC) goes. PostgreSQL drops whole day partitions;
        SQLite deletes those rows."""
        self._ret = self.retention()
        cutoff = self._cutoff(now)
        out: dict[str, Any] = {"retention_days": self._ret, "cutoff": cutoff}
        if cutoff is None:
            return dict(out, dropped=[], deleted=0)
        if not self.pg:
            with self.tx() as db:
                n = db.execute("DELETE FROM telemetry WHERE ts < ?", (cutoff,)).rowcount
            return dict(out, dropped=[], deleted=int(n))
        dropped, deleted = [], 0
        for d in self.partitions():
            if (d + 1) * DAY > cutoff:
                continue
            name = _partition_name(d)
            with self.tx() as db:
                db.execute("SET LOCAL lock_timeout = '10s'")
                deleted += int(db.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])
                db.execute(f"DROP TABLE {name}")
            self._parts.discard(d)
            dropped.append(tele_codec.iso(d * DAY)[:10])
        return dict(out, dropped=dropped, deleted=deleted)

    def _auto_prune(self) -> None:
        self._pruned_at = time.monotonic()
        try:
            self.prune()
        except StoreError:
            pass  # a lock not had in time: the next hour's try

    # -- views ---------------------------------------------------------------------------

    def status(self, nodes: Sequence[Node]) -> list[dict[str, Any]]:
        """The fleet view of each node: online, level, mode, firmware, last seen, faults
        (one query for all of them)."""
        if not nodes:
            return []
        cond, args = self._in("ns.node", [n.id for n in nodes])
        q = f"SELECT {VIEW_COLS} FROM node_status ns WHERE {cond}"
        rows = {t[0]: t for t in self._tuples(q, args)}
        return [_status_of(n.id, n.site, n.groups, rows.get(n.id)) for n in nodes]

    def fleet_status(
        self,
        site: str | None = None,
        group: str | None = None,
        ids: Sequence[str] | None = None,
        *,
        state: str | Sequence[str] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """`status` of a selection made in SQL (the filters of `nodes`; `state` may be
        several, all of which hold), in id order: a page of `limit` after `after`,
        without loading the rest of the fleet."""
        self._check_ids(ids)
        where, args = self._where(site, group, ids, state, after)
        q = (
            f"SELECT n.id, n.site, {VIEW_COLS} FROM nodes n"
            f" LEFT JOIN node_status ns ON ns.node=n.id {where} ORDER BY n.id"
        )
        if limit is not None:
            q += " LIMIT ?"
            args.append(limit)
        rows = self._tuples(q, args)
        whole = site is None and group is None and ids is None and not state
        members = self._members(None if whole and limit is None else [r[0] for r in rows])
        no: tuple[str, ...] = ()
        return [_status_of(r[0], r[1], members.get(r[0], no), r[2:]) for r in rows]

    def fleet_counts(
        self,
        site: str | None = None,
        group: str | None = None,
        ids: Sequence[str] | None = None,
        *,
        state: str | Sequence[str] | None = None,
    ) -> dict[str, int]:
        """How many nodes a selection of fleet_status holds, and how many of them are
        online and have faults: one aggregate in SQL, whatever the fleet's size."""
        self._check_ids(ids)
        where, args = self._where(site, group, ids, state, None)
        q = (
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {STATES['online']} THEN 1 ELSE 0 END), 0),"
            f" COALESCE(SUM(CASE WHEN {STATES['faulty']} THEN 1 ELSE 0 END), 0)"
            f" FROM nodes n LEFT JOIN node_status ns ON ns.node=n.id {where}"
        )
        r = self._tuples(q, args)[0]
        return {"nodes": int(r[0]), "online": int(r[1]), "faulty": int(r[2])}

    def telemetry_count(self, node: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM telemetry" + (" WHERE node=?" if node else "")
        return int(self.db.execute(q, (node,) if node else ()).fetchone()[0])

    def telemetry_since(self, after_id: int, node: str | None = None) -> list[dict[str, Any]]:
        """Telemetry rows after id `after_id`, oldest first: the columns and the whole
        payload as JSON text (``payload``), as the node sent it."""
        q = f"SELECT {TELE_READ} FROM telemetry WHERE id>?" + (" AND node=?" if node else "")
        args: list[Any] = [after_id] + ([node] if node else [])
        return [_tele_row(r) for r in self.db.execute(q + " ORDER BY id", args)]

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

    def telemetry_last(
        self, limit: int, nodes: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The newest `limit` telemetry rows (of these nodes, if given), oldest first."""
        if nodes is not None and not nodes:
            return []
        q, args = f"SELECT {TELE_READ} FROM telemetry", []  # type: tuple[str, list[Any]]
        if nodes is not None:
            cond, args = self._in("node", nodes)
            q += " WHERE " + cond
        rows = list(self.db.execute(q + " ORDER BY id DESC LIMIT ?", [*args, limit]))
        return [_tele_row(r) for r in rows[::-1]]

    def fault_raises(self, node: str, faults: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The newest stored event that raised each of a node's faults (as named by
        `status`: a TALQ lamp event, or ``sensor:NAME`` for a ``sensorFault`` whose detail
        is ``NAME: reason``); a fault with no stored raise is absent."""
        return self.fault_raises_many({node: faults}).get(node, {})

    def fault_raises_many(
        self, faults: dict[str, Sequence[str]]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """`fault_raises` of several nodes ({node: faults}) in one query per 1,000."""
        want = {n: set(f) for n, f in faults.items() if f}
        found: dict[str, dict[str, dict[str, Any]]] = {}
        nodes = sorted(want)
        names = sorted(
            {"sensorFault" if f.startswith("sensor:") else f for fs in want.values() for f in fs}
        )
        for i in range(0, len(nodes), 1000):
            cond_n, args_n = self._in("node", nodes[i : i + 1000])
            cond_e, args_e = self._in("event", names)
            cur = self.db.execute(
                f"SELECT * FROM events WHERE {cond_n} AND {cond_e} ORDER BY node, ts DESC, id DESC",
                [*args_n, *args_e],
            )
            for r in cur:
                node = r["node"]
                mine = found.setdefault(node, {})
                if len(mine) == len(want[node]):
                    continue
                p = json.loads(r["payload"])
                if p.get("active") is not True:
                    continue
                fault = r["event"]
                if fault == "sensorFault":
                    fault = "sensor:" + str(p.get("detail", "")).split(":", 1)[0].strip()
                if fault in want[node] and fault not in mine:
                    mine[fault] = dict(r, payload=p)
        return {n: f for n, f in found.items() if f}

    # -- storage -----------------------------------------------------------------------

    def telemetry_bytes(self) -> int:
        """Bytes the telemetry table and its indexes take (all partitions)."""
        if self.pg:
            r = self.db.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0)"
                " FROM pg_partition_tree('telemetry')"
            ).fetchone()
            return int(r[0])
        r = self.db.execute(
            "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN"
            " (SELECT name FROM sqlite_master WHERE tbl_name='telemetry')"
        ).fetchone()
        return int(r[0])


def _wal(db: sqlite3.Connection) -> None:
    """WAL mode. Switching a new file to it wants the file alone, and SQLite answers
    "locked" at once instead of waiting its busy timeout: several processes opening a
    new store together (serve's workers) try again, for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


# -- the fleet selection's states -------------------------------------------------------

STATES = {
    "online": "ns.online = 1",
    "offline": "ns.online = 0",
    "unknown": "ns.online IS NULL",  # never said online or offline
    "not-online": "(ns.online IS NULL OR ns.online = 0)",
    "faulty": "(ns.s_faults IS NOT NULL OR ns.t_faults IS NOT NULL)",
}

PRUNE_EVERY_S = 3600.0

TELE_COLS = ("node", "ts", "received", "level", "kwh", "power_w", "heap_free", "rest")
TELE_READ = "id, node, ts, received, level, kwh, power_w, heap_free, rest"
EVENT_COLS = ("node", "ts", "received", "event", "payload")

# A node's status, state and last tele never go back in time: an older message (a
# redelivery, a retained state) leaves the row as it is.
_LAST_SEEN = (
    " last_seen=CASE WHEN node_status.last_seen IS NULL OR excluded.last_seen >"
    " node_status.last_seen THEN COALESCE(excluded.last_seen, node_status.last_seen)"
    " ELSE node_status.last_seen END"
)
STATUS_UPSERT = (
    "INSERT INTO node_status (node, online, status_at, last_seen) VALUES (?,?,?,?)"
    " ON CONFLICT(node) DO UPDATE SET online=excluded.online, status_at=excluded.status_at,"
    + _LAST_SEEN
    + " WHERE node_status.status_at IS NULL OR excluded.status_at >= node_status.status_at"
)
STATE_UPSERT = (
    "INSERT INTO node_status (node, state, state_at, has_state, s_level, s_mode, s_fw,"
    " s_faults, last_seen) VALUES (?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(node) DO UPDATE SET state=excluded.state, state_at=excluded.state_at,"
    " has_state=excluded.has_state, s_level=excluded.s_level, s_mode=excluded.s_mode,"
    " s_fw=excluded.s_fw, s_faults=excluded.s_faults,"
    + _LAST_SEEN
    + " WHERE node_status.state_at IS NULL OR excluded.state_at >= node_status.state_at"
)
TELE_UPSERT = (
    "INSERT INTO node_status (node, tele_at, t_level, t_mode, t_faults, last_seen)"
    " VALUES (?,?,?,?,?,?)"
    " ON CONFLICT(node) DO UPDATE SET tele_at=excluded.tele_at, t_level=excluded.t_level,"
    " t_mode=excluded.t_mode, t_faults=excluded.t_faults,"
    + _LAST_SEEN
    + " WHERE node_status.tele_at IS NULL OR excluded.tele_at > node_status.tele_at"
)


def _faults_json(faults: list[str]) -> str | None:
    return json.dumps(faults) if faults else None


def state_columns(p: dict[str, Any]) -> tuple[int, Any, Any, Any, str | None]:
    """(has_state, level, mode, fw, faults) of a state payload, as the view reads them."""
    if not p:
        return 0, None, None, None, None
    f = p.get("faults")
    faults = [str(x) for x in f] if isinstance(f, list) else []
    return (
        1,
        _scalar(p.get("level")),
        _text(p.get("mode")),
        _text(p.get("fw")),
        _faults_json(faults),
    )


def tele_columns(p: dict[str, Any]) -> tuple[Any, Any, str | None]:
    """(level, mode, sensor faults) of a tele payload, as the view reads them."""
    faults = []
    sensors = p.get("sensors")
    if isinstance(sensors, dict):
        for name, s in sensors.items():
            if isinstance(s, dict) and s.get("fault"):
                faults.append(f"sensor:{name}")
    return _scalar(p.get("level")), _text(p.get("source")), _faults_json(faults)


def _scalar(v: Any) -> int | None:
    return v if type(v) is int and -(2**31) <= v < 2**31 else None


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


# The node_status columns the fleet view reads, in _status_of's order.
VIEW_COLS = (
    "ns.node, ns.online, ns.last_seen, ns.has_state, ns.s_level, ns.s_mode, ns.s_fw,"
    " ns.s_faults, ns.t_level, ns.t_mode, ns.t_faults"
)


def _status_of(node: str, site: str, groups: Sequence[str], r: Any) -> dict[str, Any]:
    """The view of a node from its VIEW_COLS (by position: a quarter of a million rows
    read by name cost more than the query)."""
    if r is None or r[0] is None:
        return {
            "node": node,
            "site": site,
            "groups": list(groups),
            "online": None,
            "level": None,
            "mode": None,
            "firmware": None,
            "last_seen": None,
            "faults": [],
        }
    _, online, last_seen, has_state, s_level, s_mode, s_fw, s_faults, t_level, t_mode, t_f = r
    faults = json.loads(s_faults) if s_faults else []
    if t_f:
        faults += json.loads(t_f)
    return {
        "node": node,
        "site": site,
        "groups": list(groups),
        "online": None if online is None else bool(online),
        "level": s_level if has_state else t_level,
        "mode": s_mode or t_mode,
        "firmware": s_fw,
        "last_seen": last_seen,
        "faults": faults,
    }


def _tele_row(r: Any) -> dict[str, Any]:
    d = {k: r[k] for k in ("id", "node", "ts", "received", "level", "kwh", "power_w", "heap_free")}
    p = tele_codec.join(
        r["ts"], r["level"], r["kwh"], r["power_w"], r["heap_free"], tele_codec.unpack(r["rest"])
    )
    d["payload"] = json.dumps(p)
    return d


class _Batch:
    """A batch parsed before its transaction: the rows of each table, and the newest
    status, state and tele of each node (an upsert statement takes one row per node)."""

    def __init__(self) -> None:
        self.tele: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.status: dict[str, tuple[Any, ...]] = {}
        self.state: dict[str, tuple[Any, ...]] = {}
        self.latest: dict[str, tuple[float, dict[str, Any], float]] = {}
        self.plain = 0  # status and state messages: written whether or not they changed

    def add(self, node: str, leaf: str, raw: bytes, received: float) -> None:
        if leaf == "status":
            text = raw.decode("ascii", "replace")
            if text not in ("online", "offline"):
                return
            seen = received if text == "online" else None
            old = self.status.get(node)
            if old is not None and old[3] is not None:  # an online earlier in the batch
                seen = max(seen or old[3], old[3])
            self.status[node] = (node, int(text == "online"), received, seen)
            self.plain += 1
            return
        if leaf not in ("state", "tele", "event"):
            return
        p = tele_codec.loads(raw)
        if not isinstance(p, dict):
            return
        when = p.get("ts")
        canonical = _canonical_epoch(when) if isinstance(when, str) else None
        ts = canonical or _iso_to_epoch(when) or received
        if leaf == "state":
            old = self.state.get(node)
            if old is None or ts >= old[2]:
                self.state[node] = (node, json.dumps(p), ts, *state_columns(p), received)
            self.plain += 1
        elif leaf == "tele":
            level, kwh, power, heap, rest = tele_codec.split(p, ts, canonical is not None)
            self.tele.append(
                (
                    node,
                    ts,
                    received,
                    level,
                    kwh,
                    power,
                    heap,
                    tele_codec.pack(rest) if rest else None,
                )
            )
            old = self.latest.get(node)
            if old is None or ts > old[0]:
                self.latest[node] = (ts, p, received)  # its columns once, for the newest
        else:
            self.events.append((node, ts, received, str(p.get("event")), json.dumps(p)))


def _partition_name(day: int) -> str:
    return "telemetry_p" + tele_codec.iso(day * DAY)[:10].replace("-", "")


def _day_of(name: str) -> int:
    from datetime import datetime

    d = datetime.strptime(name[len("telemetry_p") :], "%Y%m%d").replace(tzinfo=UTC)
    return int(d.timestamp() // DAY)


def _partition_sql(day: int) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {_partition_name(day)} PARTITION OF telemetry"
        f" FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})"
    )


# -- migration 4 (lanterna.store.migrations): compact telemetry, view columns ------------

_STATUS_COLUMNS = (
    "tele_at REAL",
    "has_state INTEGER NOT NULL DEFAULT 0",
    "s_level INTEGER",
    "s_mode TEXT",
    "s_fw TEXT",
    "s_faults TEXT",  # JSON list, NULL when none: `faulty` is a NULL test
    "t_level INTEGER",
    "t_mode TEXT",
    "t_faults TEXT",
)
_M4_COMMON = (
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE INDEX nodes_site ON nodes(site, id)",
    "CREATE INDEX group_members_node ON group_members(node)",
)


def _m4_status(store: Store, db: Any) -> None:
    real = "DOUBLE PRECISION" if store.pg else "REAL"
    for col in _STATUS_COLUMNS:
        db.execute(f"ALTER TABLE node_status ADD COLUMN {col.replace('REAL', real)}")
    for stmt in _M4_COMMON:
        db.execute(stmt)
    rows = db.execute("SELECT node, state, tele, last_seen FROM node_status").fetchall()
    for r in rows:
        state = _loads(r["state"])
        tele = _loads(r["tele"])
        t_at = (_iso_to_epoch(tele.get("ts")) or r["last_seen"]) if tele else None
        db.execute(
            "UPDATE node_status SET has_state=?, s_level=?, s_mode=?, s_fw=?, s_faults=?,"
            " tele_at=?, t_level=?, t_mode=?, t_faults=?, tele=NULL WHERE node=?",
            (
                *state_columns(state),
                t_at,
                *(tele_columns(tele) if tele else (None,) * 3),
                r["node"],
            ),
        )


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        p = json.loads(text)
    except ValueError:
        return {}
    return p if isinstance(p, dict) else {}


def _m4_rows(db: Any, table: str) -> Iterator[tuple[Any, ...]]:
    for r in db.execute(f"SELECT id, node, ts, received, payload FROM {table} ORDER BY id"):
        p = _loads(r["payload"])
        level, kwh, power, heap, rest = tele_codec.split(p, r["ts"])
        yield (
            r["id"],
            r["node"],
            r["ts"],
            r["received"],
            level,
            kwh,
            power,
            heap,
            tele_codec.pack(rest) if rest else None,
        )


def migrate_4_sqlite(store: Store, db: Any) -> None:
    _m4_status(store, db)
    db.execute(
        "CREATE TABLE telemetry_new (id INTEGER PRIMARY KEY, node TEXT NOT NULL,"
        " ts REAL NOT NULL, received REAL NOT NULL, level INTEGER, kwh REAL, power_w REAL,"
        " heap_free INTEGER, rest BLOB)"
    )
    db.executemany(
        "INSERT INTO telemetry_new VALUES (?,?,?,?,?,?,?,?,?)", list(_m4_rows(db, "telemetry"))
    )
    db.execute("DROP TABLE telemetry")
    db.execute("ALTER TABLE telemetry_new RENAME TO telemetry")
    db.execute("CREATE UNIQUE INDEX telemetry_node_ts ON telemetry(node, ts)")


def migrate_4_postgresql(store: Store, db: Any) -> None:
    _m4_status(store, db)
    db.execute("ALTER TABLE telemetry RENAME TO telemetry_v1")
    db.execute("ALTER INDEX telemetry_node_ts RENAME TO telemetry_v1_node_ts")
    db.execute("CREATE SEQUENCE telemetry_row_seq AS BIGINT")
    # Fixed-width columns first, widest first: no alignment padding between them.
    db.execute(
        "CREATE TABLE telemetry (id BIGINT NOT NULL DEFAULT nextval('telemetry_row_seq'),"
        " ts DOUBLE PRECISION NOT NULL, received DOUBLE PRECISION NOT NULL,"
        " kwh DOUBLE PRECISION, power_w DOUBLE PRECISION, level INTEGER, heap_free INTEGER,"
        " node TEXT NOT NULL, rest BYTEA, UNIQUE (node, ts)) PARTITION BY RANGE (ts)"
    )
    db.execute("CREATE INDEX telemetry_id ON telemetry (id)")
    rows = list(_m4_rows(db, "telemetry_v1"))
    for d in sorted({int(r[2] // DAY) for r in rows}):
        db.execute(_partition_sql(d))
    if rows:
        cols = "id, node, ts, received, level, kwh, power_w, heap_free, rest"
        db.executemany(f"INSERT INTO telemetry ({cols}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        db.execute("SELECT setval('telemetry_row_seq', ?)", (max(r[0] for r in rows),))
    db.execute("DROP TABLE telemetry_v1")

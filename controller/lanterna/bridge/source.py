"""What the city platform is told, read from the store: each node with its place (its own
or its site's), its groups and the newest of what it said (status, state, last tele),
and each group with what its members agree on. Reads in pages of node ids (keyset), so
a quarter of a million nodes never sit in memory at once, on both backends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanterna.store import Store
from lanterna.store import tele as tele_codec

PAGE = 1000


@dataclass
class NodeLatest:
    node: str
    site: str
    lat: float
    lon: float
    rated_w: float
    groups: tuple[str, ...] = ()
    online: bool | None = None
    status_at: float | None = None
    state: dict[str, Any] | None = None
    state_at: float | None = None
    tele: dict[str, Any] | None = None
    tele_at: float | None = None
    last_seen: float | None = None

    def level(self) -> tuple[int | None, float | None]:
        """The lamp's level and the node's time it held it: the newer of state and tele."""
        s = self.state.get("level") if self.state else None
        t = self.tele.get("level") if self.tele else None
        if type(s) is int and (self.tele_at is None or (self.state_at or 0) >= self.tele_at):
            return s, self.state_at
        if type(t) is int:
            return t, self.tele_at
        return (s, self.state_at) if type(s) is int else (None, None)

    def faults(self) -> tuple[list[str], float | None]:
        """The lamp's active faults, from the newer of state and tele."""
        s, t = self.state or {}, self.tele or {}
        use_state = "faults" in s and (self.tele_at is None or (self.state_at or 0) >= self.tele_at)
        src, at = (s, self.state_at) if use_state else (t, self.tele_at)
        f = src.get("faults")
        return ([x for x in f if isinstance(x, str)] if isinstance(f, list) else []), at


@dataclass
class GroupLatest:
    name: str
    description: str
    members: int
    points: list[tuple[float, float]] = field(default_factory=list)
    level: int | None = None  # when every member that reported agrees
    level_at: float | None = None
    schedule: str | None = None  # the active schedule, when every member that reported agrees
    schedule_at: float | None = None


_NODE_SQL = (
    "SELECT n.id, n.site, COALESCE(n.lat, s.lat), COALESCE(n.lon, s.lon), n.rated_w,"
    " ns.online, ns.status_at, ns.state, ns.state_at, ns.tele_at, ns.last_seen,"
    " t.level, t.kwh, t.power_w, t.heap_free, t.rest"
    " FROM nodes n JOIN sites s ON s.name=n.site"
    " LEFT JOIN node_status ns ON ns.node=n.id"
    " LEFT JOIN telemetry t ON t.node=n.id AND t.ts=ns.tele_at"
)


def nodes(
    store: Store,
    *,
    seen_after: float | None = None,
    site: str | None = None,
    ids: Sequence[str] | None = None,
    page: int = PAGE,
) -> Iterator[list[NodeLatest]]:
    """Pages of nodes in id order: all of them, those of a site, those given, or those
    the store heard from at or after `seen_after` (node_status.last_seen, the controller's
    clock)."""
    if site is not None and store.site(site) is None:
        from lanterna.store import StoreError

        raise StoreError(f"unknown site {site!r}")
    after = ""
    while True:
        where, args = ["n.id > ?"], [after]  # type: list[str], list[Any]
        if seen_after is not None:
            where.append("ns.last_seen >= ?")
            args.append(seen_after)
        if site is not None:
            where.append("n.site = ?")
            args.append(site)
        if ids is not None:
            if not ids:
                return
            marks = ",".join("?" * len(ids))
            where.append(f"n.id IN ({marks})")
            args.extend(ids)
        q = f"{_NODE_SQL} WHERE {' AND '.join(where)} ORDER BY n.id LIMIT ?"
        rows = list(store.db.execute(q, [*args, page]))
        if not rows:
            return
        members = store._members([r[0] for r in rows])  # the store's own query
        yield [_node(r, members.get(r[0], ())) for r in rows]
        if len(rows) < page:
            return
        after = rows[-1][0]


def last_seen(store: Store) -> float | None:
    r = store.db.execute("SELECT MAX(last_seen) FROM node_status").fetchone()
    return None if r is None or r[0] is None else float(r[0])


def groups(store: Store, names: Sequence[str] | None = None) -> list[GroupLatest]:
    """Each group (of `names`, or all) with its members' places, and the level and active
    schedule its members agree on (None when they differ or none has reported)."""
    out: dict[str, GroupLatest] = {}
    q = "SELECT name, description FROM groups"
    args: list[Any] = []
    if names is not None:
        if not names:
            return []
        q += f" WHERE name IN ({','.join('?' * len(names))})"
        args = list(names)
    for r in store.db.execute(q + " ORDER BY name", args):
        out[r[0]] = GroupLatest(r[0], r[1] or "", 0)
    if not out:
        return []
    cond = f"m.grp IN ({','.join('?' * len(out))})"
    levels: dict[str, set[Any]] = {g: set() for g in out}
    scheds: dict[str, set[Any]] = {g: set() for g in out}
    at: dict[str, list[float]] = {g: [] for g in out}
    for r in store.db.execute(
        "SELECT m.grp, COALESCE(n.lat, s.lat), COALESCE(n.lon, s.lon), ns.state, ns.state_at"
        " FROM group_members m JOIN nodes n ON n.id=m.node JOIN sites s ON s.name=n.site"
        f" LEFT JOIN node_status ns ON ns.node=n.id WHERE {cond}",
        list(out),
    ):
        g = out[r[0]]
        g.members += 1
        g.points.append((float(r[2]), float(r[1])))
        if r[3]:
            st = json.loads(r[3])
            levels[r[0]].add(st.get("level"))
            scheds[r[0]].add(st.get("schedule"))
            at[r[0]].append(float(r[4]))
    for name, g in out.items():
        if len(levels[name]) == 1 and at[name]:
            (lv,) = levels[name]
            if type(lv) is int:
                g.level, g.level_at = lv, max(at[name])
        if len(scheds[name]) == 1 and at[name]:
            (sc,) = scheds[name]
            if isinstance(sc, str):
                g.schedule, g.schedule_at = sc, max(at[name])
    return list(out.values())


def _node(r: Any, groups: tuple[str, ...]) -> NodeLatest:
    state = _json(r[7])
    tele = None
    if r[9] is not None and r[15] is not None:
        tele = tele_codec.join(r[9], r[11], r[12], r[13], r[14], tele_codec.unpack(r[15]))
    return NodeLatest(
        node=r[0],
        site=r[1],
        lat=float(r[2]),
        lon=float(r[3]),
        rated_w=float(r[4]),
        groups=groups,
        online=None if r[5] is None else bool(r[5]),
        status_at=r[6],
        state=state if isinstance(state, dict) else None,
        state_at=r[8],
        tele=tele,
        tele_at=r[9] if tele is not None else None,
        last_seen=r[10],
    )


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None

"""The data loggers at work (lanterna.talq.logger says what each mode does): one pass a
second records what is new and reports what is due.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from lanterna.talq import logger as lg
from lanterna.talq.gateway import Gateway
from lanterna.talq.model import TalqError, not_found
from lanterna.talq.state import State

log = logging.getLogger("lanterna.talq")
EVENT_PAGE = 5000


class Collector:
    def __init__(self, gw: Gateway, send: Callable[[Any, dict[str, Any]], None] | None) -> None:
        """`send(db, report)` queues a LogReport to the CMS inside the transaction `db`
        (None: no CMS, reports wait for a GET)."""
        self.gw = gw
        self.send = send
        self.seen: dict[str, dict[tuple[str, str, str], Any]] = {}  # vendor mode, per logger

    # -- the CMS's writes ----------------------------------------------------------------

    def put(self, cfg: Any, create: bool, address: str | None = None) -> dict[str, Any]:
        if (
            address is not None
            and isinstance(cfg, dict)
            and cfg.get("address")
            not in (
                None,
                address,
            )
        ):
            raise lg.payload_error(f"address {cfg.get('address')!r}: not the path's {address!r}")
        if address is not None and isinstance(cfg, dict):
            cfg = {**cfg, "address": address}
        c = lg.check(cfg)
        st = self.gw.state()
        have = set(st.ids("logger"))
        if create and c["address"] in have:
            raise TalqError(
                409,
                "resourceConflict",
                f"logger {c['address']!r} exists",
                [("logger-configs", c["address"])],
            )
        if not create and c["address"] not in have:
            raise not_found("logger-configs", c["address"])
        if create and len(have) >= lg.MAX_LOGGERS:
            raise TalqError(
                422, "serviceConstraintExceeded", f"at most {lg.MAX_LOGGERS} data loggers"
            )
        store = st.store
        top = store.tuples("SELECT COALESCE(MAX(id), 0) FROM events")[0][0]
        with store.tx() as db:
            db.execute(
                "INSERT INTO talq_objects (kind, id, body, changed) VALUES ('logger',?,?,?)"
                " ON CONFLICT (kind, id) DO UPDATE SET body=excluded.body,"
                " changed=excluded.changed",
                (c["address"], lg.json.dumps(c, sort_keys=True), time.time()),
            )
            if create:  # only what happens from now on is recorded
                st.set_mark(db, c["address"], int(top), None, None)
        self.seen.pop(c["address"], None)
        return c

    def delete(self, address: str) -> dict[str, Any]:
        st = self.gw.state()
        c = st.get("logger", address)
        if c is None:
            raise not_found("logger-configs", address)
        st.delete("logger", address)
        self.seen.pop(address, None)
        return c

    def get(self, address: str) -> dict[str, Any]:
        c = self.gw.state().get("logger", address)
        if c is None:
            raise not_found("logger-configs", address)
        return c

    # -- recording -----------------------------------------------------------------------

    def _sources(self, cfg: dict[str, Any]) -> set[str]:
        store = self.gw.store()

        def node_of(a: str) -> str | None:
            try:
                return self.gw.node_of(a)
            except TalqError:
                return None

        def group_nodes(g: str) -> list[str]:
            try:
                return [n.id for n in store.nodes(group=g)]
            except Exception:
                return []

        def all_nodes() -> list[str]:
            return [r[0] for r in store.tuples("SELECT id FROM nodes")]

        return lg.sources(cfg, group_nodes, node_of, all_nodes)

    def record(self, cfg: dict[str, Any], now: float, force_sample: bool = False) -> int:
        """Record what is new for one logger; -> entries added."""
        st = self.gw.state()
        addr = cfg["address"]
        mark = st.mark(addr) or (0, None, None)
        events_after, sampled, reported = mark
        mode = cfg["recordingMode"]["type"]
        entries: list[dict[str, Any]] = []
        top = events_after
        if mode == "EventRecordingMode":
            nodes = self._sources(cfg)
            rows = st.store.tuples(
                "SELECT id, node, ts, event, payload FROM events WHERE id>? ORDER BY id LIMIT ?",
                (events_after, EVENT_PAGE),
            )
            for r in rows:
                top = max(top, int(r[0]))
                if r[1] not in nodes:
                    continue
                try:
                    p = lg.json.loads(r[4])
                except ValueError:
                    continue
                e = lg.event_entry(r[1], r[3], float(r[2]), p if isinstance(p, dict) else {})
                if e is not None and lg.wants_event(cfg, e["data"]["eventType"]):
                    entries.append(e)
        elif mode == "PeriodicRecordingMode":
            at = now if force_sample else lg.sample_instant(cfg, sampled, now)
            if at is not None:
                ids = sorted(self._sources(cfg))
                for page in self.gw._pages(ids) if ids else []:
                    for dev in page:
                        entries += lg.attribute_entries(cfg, dev, at)
                sampled = at if not force_sample else sampled
        else:  # vendor: each newer value
            seen = self.seen.setdefault(addr, {})
            ids = sorted(self._sources(cfg))
            for page in self.gw._pages(ids) if ids else []:
                for dev in page:
                    entries += lg.attribute_entries(cfg, dev, now, seen)
        if top == events_after and not entries and sampled == mark[1]:
            return 0
        with st.store.tx() as db:
            if entries:
                st.add_entries(db, addr, entries)
            st.set_mark(db, addr, top, sampled, reported)
        return len(entries)

    # -- reporting -----------------------------------------------------------------------

    def report(self, cfg: dict[str, Any], now: float) -> bool:
        """Queue the logger's report to the CMS when it is due; -> queued."""
        if self.send is None:
            return False
        st = self.gw.state()
        addr = cfg["address"]
        waiting = st.entries(addr)
        mark = st.mark(addr) or (0, None, None)
        if not lg.report_due(cfg, waiting[0][2] if waiting else None, mark[2], now):
            return False
        body = {"address": addr, "entries": [e for _, e, _ in waiting]}
        with st.store.tx() as db:
            self.send(db, body)
            st.take_entries(db, addr, waiting[-1][0])
            st.set_mark(db, addr, mark[0], mark[1], now)
        log.info("log report %s: %d entries queued for the CMS", addr, len(waiting))
        return True

    def take_report(self, address: str) -> dict[str, Any]:
        """GET /log-reports/{address}: a periodic logger samples now, then what waits is
        reported (and taken from the log)."""
        cfg = self.get(address)
        now = time.time()
        self.record(cfg, now, force_sample=cfg["recordingMode"]["type"] != "EventRecordingMode")
        st = self.gw.state()
        waiting = st.entries(address)
        if waiting:
            with st.store.tx() as db:
                st.take_entries(db, address, waiting[-1][0])
        return {"address": address, "entries": [e for _, e, _ in waiting]}

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for cfg in self.gw.state().all("logger"):
            try:
                self.record(cfg, now)
                self.report(cfg, now)
            except Exception:
                log.exception("logger %s", cfg.get("address"))

    def count(self) -> int:
        return len(State(self.gw.store()).ids("logger"))

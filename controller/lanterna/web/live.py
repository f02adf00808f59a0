"""The map's live feed: server-sent events of the nodes whose view changed.

Every POLL_S the feed reads the nodes heard from since its mark (node_status.last_seen,
the controller's receipt time) less OVERLAP_S, because serve commits a batch after the
receipt times it records, and sends those whose row differs from what this connection
last sent: a row is sent once per change, never skipped for having been committed late.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from lanterna.store import Store
from lanterna.web import reads

POLL_S = 1.0
OVERLAP_S = 30.0
PING_S = 15.0


async def feed(
    stores: Callable[[], Store],
    cursor: float,
    alive: Callable[[], Any],
) -> AsyncIterator[str]:
    """The event stream from `cursor` on, for as long as `alive()` (awaitable) says."""
    sent: dict[str, tuple] = {}
    quiet = 0.0
    yield "retry: 2000\n\n"
    while await alive():
        batch, cursor = await run_in_threadpool(_changes, stores, cursor, sent)
        if batch is not None:
            quiet = 0.0
            yield f"event: nodes\ndata: {json.dumps(batch, separators=(',', ':'))}\n\n"
        else:
            quiet += POLL_S
            if quiet >= PING_S:
                quiet = 0.0
                yield ": ping\n\n"
        await asyncio.sleep(POLL_S)


def _changes(
    stores: Callable[[], Store], cursor: float, sent: dict[str, tuple]
) -> tuple[dict[str, Any] | None, float]:
    store = stores()
    mark = reads.seen_max(store)
    status, where = reads.changed(store, cursor - OVERLAP_S)
    rows = reads.MapRows()
    out = []
    for s in status:
        lat, lon = where.get(s["node"], (None, None))
        row = rows.row(s, lat, lon)
        sig = (row[3], row[4], tuple(row[7]), lat, lon)
        if sent.get(s["node"]) == sig:
            continue
        sent[s["node"]] = sig
        out.append(row)
    cursor = max(cursor, mark)
    if not out:
        return None, cursor
    return {"cursor": cursor, "sites": rows.sites, "groups": rows.groups, "nodes": out}, cursor

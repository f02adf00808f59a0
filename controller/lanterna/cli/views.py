"""The live views of ``lanterna``: fleet status, active faults, telemetry (tail and
follow). They read the store that `lanterna serve` fills; nothing here talks to a node,
so every view works with the broker down, and no view prints a key.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator

import click

from lanterna.cli.format import (
    _cell,
    _count,
    _select,
    _status_json,
    _status_table,
    iso,
)
from lanterna.cli.options import json_option, narrowing, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.context import Ctx, store_errors
from lanterna.store import Store

# The live view polls: `lanterna serve` writes from another process and SQLite tells no
# other connection about a commit.
POLL_S = 0.5


# -- status and faults -------------------------------------------------------------------


@click.command("status")
@narrowing
@click.option(
    "--online/--offline",
    default=None,
    help="Only nodes online; or only nodes not known to be (offline or never heard from).",
)
@click.option("--faulty", is_flag=True, help="Only nodes with active faults.")
@json_option
@pass_ctx
@store_errors
def status(
    c: Ctx,
    site: str | None,
    group: str | None,
    node_ids: tuple[str, ...],
    online: bool | None,
    faulty: bool,
    as_json: bool,
) -> None:
    """What each node last said: online, level, mode, firmware, last seen, faults.

    A summary (nodes, online, with faults) follows on stderr.

    \b
    Examples:
      lanterna status --site greenwich
      lanterna status --group high-street --offline
      lanterna status --faulty --json
    """
    store = c.store()
    rows = store.status(_select(store, site, group, node_ids))
    if online is not None:
        rows = [s for s in rows if (s["online"] is True) == online]
    if faulty:
        rows = [s for s in rows if s["faults"]]
    if as_json:
        emit_json([_status_json(s) for s in rows])
    elif rows:
        click.echo(_status_table(rows))
    n_online = sum(1 for s in rows if s["online"])
    n_faulty = sum(1 for s in rows if s["faults"])
    click.echo(f"{_count(len(rows), 'node')}, {n_online} online, {n_faulty} with faults", err=True)


@click.command("faults")
@narrowing
@json_option
@pass_ctx
@store_errors
def faults(
    c: Ctx, site: str | None, group: str | None, node_ids: tuple[str, ...], as_json: bool
) -> None:
    """Active faults, one row each, with the event that raised it (when it was stored).

    Lamp faults carry their TALQ names (lampFailure, relayFailure, ...); a failed sensor
    is sensor:NAME.

    \b
    Example:
      lanterna faults --site greenwich
    """
    store = c.store()
    out = []
    for s in store.status(_select(store, site, group, node_ids)):
        if not s["faults"]:
            continue
        raised = store.fault_raises(s["node"], s["faults"])
        for f in s["faults"]:
            e = raised.get(f)
            out.append(
                {
                    "node": s["node"],
                    "site": s["site"],
                    "fault": f,
                    "raised": iso(e["ts"]) if e else None,
                    "detail": e["payload"].get("detail") if e else None,
                }
            )
    if as_json:
        emit_json(out)
        return
    if out:
        rows = [
            (r["node"], r["site"], r["fault"], _cell(r["raised"]), _cell(r["detail"])) for r in out
        ]
        click.echo(table(("node", "site", "fault", "raised", "detail"), rows))
    nodes = len({r["node"] for r in out})
    click.echo(f"{_count(len(out), 'fault')} on {_count(nodes, 'node')}", err=True)


# -- telemetry ---------------------------------------------------------------------------


@click.group()
def telemetry() -> None:
    """The telemetry the nodes publish, as `lanterna serve` stores it."""


def follow(
    store: Store,
    after_id: int,
    stop: threading.Event,
    nodes: set[str] | None = None,
    interval: float = POLL_S,
) -> Iterator[sqlite3.Row]:
    """Telemetry rows stored after `after_id` (of these nodes), as they arrive, until
    `stop` is set."""
    while not stop.is_set():
        rows = store.telemetry_since(after_id)
        for r in rows:
            after_id = r["id"]
            if nodes is None or r["node"] in nodes:
                yield r
        if not rows:
            stop.wait(interval)


def _tele_json(r: sqlite3.Row) -> str:
    p = json.loads(r["payload"])
    d = {
        "id": r["id"],
        "ts": iso(r["ts"]),
        "received": iso(r["received"]),
        "node": r["node"],
        "level": r["level"],
        "power_w": r["power_w"],
        "kwh": r["kwh"],
        "heap_free": p.get("heap_free"),
        "tele": p,
    }
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def _tele_line(r: sqlite3.Row | None, width: int) -> str:
    """One fixed-width row (a followed stream cannot be laid out as a table); None: header."""
    if r is None:
        cells: tuple[str, ...] = ("time", "node", "level", "power W", "kWh", "heap_free")
    else:
        heap = json.loads(r["payload"]).get("heap_free")
        cells = (
            _cell(iso(r["ts"])),
            r["node"],
            _cell(r["level"]),
            _cell(r["power_w"], ".1f"),
            _cell(r["kwh"], ".3f"),
            _cell(heap),
        )
    t, n, *nums = cells
    return f"{t:<20}  {n:<{width}}  " + "  ".join(
        v.rjust(w) for v, w in zip(nums, (5, 8, 10, 9), strict=True)
    )


@telemetry.command("tail")
@narrowing
@click.option("--follow/--no-follow", "keep_following", default=False, help="Keep printing.")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True)
@json_option
@pass_ctx
@store_errors
def telemetry_tail(
    c: Ctx,
    site: str | None,
    group: str | None,
    node_ids: tuple[str, ...],
    keep_following: bool,
    limit: int,
    as_json: bool,
) -> None:
    """The last LIMIT telemetry rows; with --follow, then every new one until Ctrl-C.

    --json prints one JSON object per line (JSON Lines), with the whole tele payload.

    \b
    Examples:
      lanterna telemetry tail --site greenwich --limit 20
      lanterna telemetry tail --node greenwich-001 --follow --json | jq .level
    """
    store = c.store()
    ids = None
    if site or group or node_ids:
        ids = [n.id for n in _select(store, site, group, node_ids)]
    top = store.telemetry_last(1)  # before the rows, so nothing falls between the two
    rows = store.telemetry_last(limit, ids)
    after = rows[-1]["id"] if rows else top[0]["id"] if top else 0
    width = max([4, *(len(i) for i in ids or ()), *(len(r["node"]) for r in rows)])

    def show(r: sqlite3.Row) -> None:
        click.echo(_tele_json(r) if as_json else _tele_line(r, width))

    if not as_json:
        click.echo(_tele_line(None, width))
    for r in rows:
        show(r)
    if not keep_following:
        return
    try:
        for r in follow(store, after, threading.Event(), set(ids) if ids is not None else None):
            show(r)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live view ends: exit 0, no "Aborted!"


COMMANDS = [status, faults, telemetry]

"""The live views of ``lanterna``: fleet status, active faults, telemetry (tail and
follow). They read the store that `lanterna serve` fills; nothing here talks to a node,
so every view works with the broker down, and no view prints a key.

The fleet views select in SQL (Store.fleet_status: site, group, state, and a page of
``--limit`` nodes after ``--after``, keyset on the node id), so a city's 250,000 nodes
are not all loaded to show a page of them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

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
from lanterna.errors import malformed
from lanterna.store import Store

# A telemetry row as the store gives it (Store.telemetry_since: a dict on both backends)
TeleRow = dict[str, Any]

STATE_CHOICES = ("online", "offline", "unknown", "faulty")


def paging(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--state, --limit, --after: the fleet views' SQL filter and keyset page."""
    for o in reversed(
        [
            click.option(
                "--state",
                type=click.Choice(STATE_CHOICES),
                help="Only nodes online, offline (said so), unknown (never said), or faulty.",
            ),
            click.option(
                "--limit",
                type=click.IntRange(min=1),
                help=f"At most this many nodes (a page; default {PAGE:,}).",
            ),
            click.option("--all", "every", is_flag=True, help="Every node: no page."),
            click.option(
                "--after",
                metavar="NODE",
                help="Nodes after this node id (the next page: the last id of this one).",
            ),
        ]
    ):
        fn = o(fn)
    return fn


# The default page of the fleet views: a city's fleet is paged, not printed whole (the
# next page is named on stderr; --all prints every node).
PAGE = 1000


def page_limit(limit: int | None, every: bool) -> int | None:
    """The page size a fleet view asks for: --limit, else PAGE; None with --all."""
    if every and limit is not None:
        raise malformed("--all and --limit: give one of them")
    return None if every else (limit or PAGE)


def next_page_hint(shown: int, last: str) -> str:
    return f"; {shown:,} shown (next page: --after {last}; every node: --all)"


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
@paging
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
    state: str | None,
    limit: int | None,
    every: bool,
    after: str | None,
    as_json: bool,
) -> None:
    """What each node last said: online, level, mode, firmware, last seen, faults.

    A summary of the whole selection (nodes, online, with faults) follows on stderr. The
    first 1,000 nodes are shown; page with --limit and --after (the last node id of the
    page before), or --all.

    \b
    Examples:
      lanterna status --site greenwich
      lanterna status --group high-street --offline
      lanterna status --faulty --json
      lanterna status --state offline --limit 100 --after greenwich-0420
    """
    states = [state] if state else []
    if online is not None:
        states.append("online" if online else "not-online")
    if faulty:
        states.append("faulty")
    lim = page_limit(limit, every)
    store = c.store()
    ids = list(node_ids) or None
    rows = store.fleet_status(
        site, group, ids, state=states, limit=None if lim is None else lim + 1, after=after
    )
    more = lim is not None and len(rows) > lim
    rows = rows[:lim] if lim is not None else rows
    if as_json:
        emit_json([_status_json(s) for s in rows])
    elif rows:
        click.echo(_status_table(rows))
    if more or after is not None:
        n = store.fleet_counts(site, group, ids, state=states)
    else:
        n = {
            "nodes": len(rows),
            "online": sum(1 for s in rows if s["online"]),
            "faulty": sum(1 for s in rows if s["faults"]),
        }
    line = f"{_count(n['nodes'], 'node')}, {n['online']} online, {n['faulty']} with faults"
    click.echo(line + (next_page_hint(len(rows), rows[-1]["node"]) if more else ""), err=True)


@click.command("faults")
@narrowing
@click.option("--limit", type=click.IntRange(min=1), help="At most this many faulty nodes.")
@click.option("--after", metavar="NODE", help="Faulty nodes after this node id (next page).")
@json_option
@pass_ctx
@store_errors
def faults(
    c: Ctx,
    site: str | None,
    group: str | None,
    node_ids: tuple[str, ...],
    limit: int | None,
    after: str | None,
    as_json: bool,
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
    selected = store.fleet_status(
        site, group, list(node_ids) or None, state="faulty", limit=limit, after=after
    )
    raises = store.fault_raises_many({s["node"]: s["faults"] for s in selected})
    for s in selected:
        raised = raises.get(s["node"], {})
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
) -> Iterator[TeleRow]:
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


def _tele_json(r: TeleRow) -> str:
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


def _tele_line(r: TeleRow | None, width: int) -> str:
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

    def show(r: TeleRow) -> None:
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


# -- the store itself -------------------------------------------------------------------
# (here, beside the views that read it: `store` is how big the views' data gets)


@click.group("store")
def store_group() -> None:
    """The store: which backend, its size, and how long telemetry is kept."""


@store_group.command("info")
@json_option
@pass_ctx
@store_errors
def store_info(c: Ctx, as_json: bool) -> None:
    """Backend, where (a URL without its password), schema version, telemetry rows and
    bytes, retention.

    \b
    Example:
      lanterna store info --json
    """
    s = c.store()
    rows = s.telemetry_count()
    size = s.telemetry_bytes()
    out = {
        "backend": s.backend,
        "store": str(s.path),
        "schema_version": s.version,
        "telemetry_rows": rows,
        "telemetry_bytes": size,
        "bytes_per_row": round(size / rows, 1) if rows else None,
        "retention_days": s.retention(),
        "partitions": len(s.partitions()) if s.pg else None,
    }
    if as_json:
        emit_json(out)
        return
    for k, v in out.items():
        click.echo(f"{k + ':':<16} {_cell(v)}")


@store_group.command("retention")
@click.option("--days", type=int, help="Keep this many days of telemetry besides today.")
@click.option("--off", is_flag=True, help="Keep all telemetry (no retention).")
@json_option
@pass_ctx
@store_errors
def store_retention(c: Ctx, days: int | None, off: bool, as_json: bool) -> None:
    """Show or set how many days of telemetry the store keeps.

    `lanterna serve` applies it every hour (PostgreSQL drops whole day partitions,
    SQLite deletes the rows); `lanterna store prune` applies it now.

    \b
    Examples:
      lanterna store retention --days 90
      lanterna store retention --off
    """
    if days is not None and off:
        raise malformed("--days and --off: give one")
    if days is not None and days < 1:
        raise malformed(f"--days {days}: at least 1")
    s = c.store()
    if days is not None or off:
        s.set_retention(None if off else days)
    kept = s.retention()
    if as_json:
        emit_json({"retention_days": kept})
    else:
        click.echo("all telemetry is kept" if kept is None else f"telemetry kept: {kept} days")


@store_group.command("prune")
@json_option
@pass_ctx
@store_errors
def store_prune(c: Ctx, as_json: bool) -> None:
    """Apply the retention now: telemetry before the cutoff goes.

    \b
    Example:
      lanterna store prune --json
    """
    out = c.store().prune()
    cut = out["cutoff"]
    if as_json:
        emit_json(dict(out, cutoff=iso(cut) if cut is not None else None))
    elif cut is None:
        click.echo("no retention set (lanterna store retention --days N): nothing pruned")
    else:
        parts = f" ({len(out['dropped'])} partitions)" if out["dropped"] else ""
        click.echo(f"pruned {out['deleted']} telemetry rows before {iso(cut)}{parts}")


COMMANDS = [status, faults, telemetry, store_group]

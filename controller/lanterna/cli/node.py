"""`lanterna node`: register lamp posts (add, list, show, remove) or boot a virtual one
(run, thin over lanterna.sim.node).

Everything but `run` reads or edits the store; nothing talks to a node, so every view
works with the broker down. A node's key is stored but never shown: views print
``Node.public()``, and an error about a key names where it came from, not its value.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from lanterna.cli.format import _cell, _status_json, _yes_no, age, iso
from lanterna.cli.options import json_option, location, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.cli.views import next_page_hint, page_limit, paging
from lanterna.context import Ctx, store_errors
from lanterna.fleet.registry import (
    check_name,
    check_range,
    load_node_board,
    parse_coap,
    read_key,
)
from lanterna.store import UnknownNode


@click.group()
def node() -> None:
    """Lamp posts: register them (add, list, show, remove) or boot a virtual one (run)."""


@node.command("run")
@click.option("--board", "board_name", default="sim", show_default=True, help="Name or file.")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The node's config.json (docs/firmware.md).",
)
@click.option(
    "--schedule",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Install this schedule at boot (refused, keeping the old one, if invalid).",
)
@location(note=" (overrides config)")
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="Start the node's clock at this UTC time (default: now).",
)
@click.option(
    "--warp",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Time-warp factor: 3600 runs an hour a second.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory the node uses as its flash filesystem (default: current).",
)
@click.option("--debug", is_flag=True, help="Log level debug (adds a heap line per night).")
def node_run(
    board_name: str,
    config: Path | None,
    schedule: Path | None,
    lat: float | None,
    lon: float | None,
    tz: str | None,
    start,
    warp: int,
    root: Path | None,
    debug: bool,
) -> None:
    """Boot one virtual lamp post; it prints every change of lamp level. Ctrl-C stops it.

    \b
    Example:
      lanterna node run --schedule docs/examples/schedule-greenwich.json \\
          --lat 51.4826 --lon 0.0077 --tz Europe/London --start 2026-11-25 --warp 3600
    """
    from lanterna.sim.node import run_node

    sys.exit(
        run_node(
            board_name=board_name,
            config=config,
            schedule=schedule,
            lat=lat,
            lon=lon,
            tz=tz,
            start=start,
            warp=warp,
            root=root,
            debug=debug,
        )
    )


@node.command("add")
@click.argument("node_id", metavar="ID")
@click.option("--site", "site_name", required=True, help="The node's site (add it first).")
@click.option("--board", "board_name", required=True, help="Board name (boards/) or file.")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the node's command key, 64 hex digits ('-': stdin).",
)
@click.option("--key", "key_hex", help="The key itself (prefer --key-file: shell history).")
@click.option("--lat", type=float, help="The pole's latitude (default: the site's).")
@click.option("--lon", type=float, help="The pole's longitude.")
@click.option("--rated-w", type=float, default=50.0, show_default=True, help="Lamp power (W).")
@click.option("--coap", help="HOST:PORT of the node's CoAP server, for direct commands.")
@json_option
@pass_ctx
@store_errors
def node_add(
    c: Ctx,
    node_id: str,
    site_name: str,
    board_name: str,
    key_file: Path | None,
    key_hex: str | None,
    lat: float | None,
    lon: float | None,
    rated_w: float,
    coap: str | None,
    as_json: bool,
) -> None:
    """Register a node, or change one (a new key restarts its command counter).

    \b
    Example:
      lanterna node add greenwich-001 --site greenwich --board esp32-devkitc \\
          --key-file keys/greenwich-001.hex --coap 10.0.4.21:5683
    """
    check_name("node", node_id)
    if (key_hex is None) == (key_file is None):
        raise click.UsageError("give the node's key with --key-file FILE (or --key HEX)")
    key = read_key(key_hex, key_file)
    board = load_node_board(board_name)
    if (lat is None) != (lon is None):
        raise click.UsageError("give both --lat and --lon, or neither")
    check_range("--lat", lat, -90, 90)
    check_range("--lon", lon, -180, 180)
    check_range("--rated-w", rated_w, 0.1, 100_000)
    host, port = parse_coap(coap)
    store = c.store()
    try:
        store.node(node_id)
        new = False
    except UnknownNode:
        new = True
    store.put_node(node_id, site_name, board["name"], key, lat, lon, rated_w, host, port)
    if as_json:
        emit_json(store.node(node_id).public())
        return
    click.echo(
        f"{'added' if new else 'updated'} node {node_id} (site {site_name}, board {board['name']})"
    )


@node.command("list")
@click.option("--site", help="Only the nodes of this site.")
@click.option("--group", help="Only the nodes of this group.")
@paging
@json_option
@pass_ctx
@store_errors
def node_list(
    c: Ctx,
    site: str | None,
    group: str | None,
    state: str | None,
    limit: int | None,
    every: bool,
    after: str | None,
    as_json: bool,
) -> None:
    """The registered nodes (never their keys), in id order: the first 1,000, a page
    with --limit and --after (the last id of the page before), or --all.

    \b
    Examples:
      lanterna node list --site greenwich --json
      lanterna node list --state offline --limit 100 --after greenwich-0420
    """
    lim = page_limit(limit, every)
    found = c.store().nodes(
        site=site, group=group, state=state, limit=None if lim is None else lim + 1, after=after
    )
    more = lim is not None and len(found) > lim
    nodes = [n.public() for n in (found[:lim] if lim is not None else found)]
    if more:
        hint = next_page_hint(len(nodes), nodes[-1]["node"])
        click.echo(hint.lstrip("; "), err=True)
    if as_json:
        emit_json(nodes)
        return
    rows = [
        (p["node"], p["site"], p["board"], f"{p['rated_w']:g}", _cell(p["coap"]))
        + (", ".join(p["groups"]) or "-",)
        for p in nodes
    ]
    click.echo(table(("node", "site", "board", "rated W", "coap", "groups"), rows, right=(3,)))


def _event_json(e: dict[str, Any]) -> dict[str, Any]:
    p = e["payload"] if isinstance(e["payload"], dict) else json.loads(e["payload"])
    return {"ts": iso(e["ts"]), "event": e["event"], "payload": p}


def _event_text(e: dict[str, Any]) -> str:
    p = {k: v for k, v in e["payload"].items() if k not in ("v", "ts", "event")}
    if "active" in p and "detail" in p:
        return f"{'raised' if p['active'] else 'cleared'} {p['detail']}"
    return json.dumps(p, separators=(",", ":"), sort_keys=True)


def _command_json(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "cmd": r["cmd"],
        "args": json.loads(r["args"]),
        "ctr": r["ctr"],
        "via": r["via"],
        "sent": iso(r["sent"]),
        "status": r["status"],
        "result": json.loads(r["result"]) if r["result"] else None,
        "acked": iso(r["acked"]),
    }


@node.command("show")
@click.argument("node_id", metavar="ID")
@json_option
@pass_ctx
@store_errors
def node_show(c: Ctx, node_id: str, as_json: bool) -> None:
    """One node: what is registered, its status, its last 10 events and commands."""
    import time

    store = c.store()
    n = store.node(node_id)
    status = _status_json(store.status([n])[0])
    for k in ("node", "site", "groups"):
        del status[k]
    events = [_event_json(e) for e in store.events(node_id, 10)]
    commands = [_command_json(r) for r in store.commands(node_id, 10)]
    if as_json:
        emit_json(dict(n.public(), status=status, events=events, commands=commands))
        return
    p = n.public()
    seen = status["last_seen_epoch"]
    fields = [
        ("node", p["node"]),
        ("site", p["site"]),
        ("board", p["board"]),
        (
            "position",
            "-" if p["lat"] is None else f"{_cell(p['lat'], 'g')}, {_cell(p['lon'], 'g')}",
        ),
        ("rated", f"{p['rated_w']:g} W"),
        ("coap", _cell(p["coap"])),
        ("groups", ", ".join(p["groups"]) or "-"),
        ("online", _yes_no(status["online"])),
        ("level", _cell(status["level"])),
        ("mode", _cell(status["mode"])),
        ("firmware", _cell(status["firmware"])),
        ("last seen", "never" if seen is None else f"{age(time.time() - seen)} ({iso(seen)})"),
        ("faults", ", ".join(status["faults"]) or "-"),
    ]
    click.echo("\n".join(f"{k:<10} {v}" for k, v in fields))
    click.echo("\nlast events:")
    erows = [(e["ts"], e["event"], _event_text(e)) for e in events]
    click.echo(table(("time", "event", "detail"), erows) if erows else "  none")
    click.echo("\nlast commands:")
    rows = [
        (r["sent"], r["cmd"], r["via"], r["status"], _cell(r["result"] and json.dumps(r["result"])))
        for r in commands
    ]
    click.echo(table(("sent", "cmd", "via", "status", "result"), rows) if rows else "  none")


@node.command("remove")
@click.argument("node_id", metavar="ID")
@json_option
@pass_ctx
@store_errors
def node_remove(c: Ctx, node_id: str, as_json: bool) -> None:
    """Forget a node (its key, its group memberships, its status; not its history)."""
    c.store().remove_node(node_id)
    if as_json:
        emit_json({"removed": node_id})
    else:
        click.echo(f"removed node {node_id}")


COMMANDS = [node]

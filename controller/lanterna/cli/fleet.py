"""The fleet registry of ``lanterna``: the sites, nodes and groups in the store (the live
views, status, faults and telemetry, are in lanterna.cli.views).

Everything here reads or edits the store (lanterna.store.db); nothing talks to a node, so
every view works with the broker down. A node's key is stored but never shown: views
print ``Node.public()``, and an error about a key names where it came from, not its value.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from lanterna.cli import cli, node
from lanterna.cli.format import (
    _cell,
    _count,
    _select,
    _status_json,
    _status_table,
    _yes_no,
    age,
    iso,
)
from lanterna.cli.output import emit_json, json_option, table
from lanterna.context import Ctx, malformed, pass_ctx, store_errors
from lanterna.store.db import Store, UnknownGroup, UnknownNode

# Node and site names are MQTT topic levels ({prefix}/{site}/{node}/{leaf},
# docs/protocol.md): no '/', no wildcards, no spaces.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise malformed(
            f"{kind} {value!r}: use letters, digits, '.', '_' and '-' (up to 64), "
            "starting with a letter or digit"
        )
    return value


def _in_range(option: str, value: float | None, lo: float, hi: float) -> None:
    if value is not None and not lo <= value <= hi:
        raise malformed(f"{option}: {value} is outside {lo:g}..{hi:g}")


# -- sites -------------------------------------------------------------------------------


@cli.group()
def site() -> None:
    """Sites: where nodes stand (latitude, longitude, IANA time zone)."""


def _check_tz(tz: str) -> None:
    import zoneinfo

    from lanterna.tzinfo import TimeZoneError, posix_tz

    try:
        zoneinfo.ZoneInfo(tz)
        posix_tz(tz)  # the rule the site's nodes will be given
    except (LookupError, ValueError, OSError, TimeZoneError):
        raise malformed(f"--tz {tz!r}: not an IANA time zone name (e.g. Europe/London)") from None


@site.command("add")
@click.argument("name")
@click.option("--lat", type=float, help="Latitude, degrees north.")
@click.option("--lon", type=float, help="Longitude, degrees east.")
@click.option("--tz", help="IANA time zone name (Europe/Rome).")
@json_option
@pass_ctx
@store_errors
def site_add(
    c: Ctx, name: str, lat: float | None, lon: float | None, tz: str | None, as_json: bool
) -> None:
    """Add a site, or change one. A built-in site (greenwich, porta-romana, baixa) takes
    its own position and zone for what is not given.

    \b
    Examples:
      lanterna site add greenwich
      lanterna site add bordeaux --lat 44.8378 --lon -0.5792 --tz Europe/Paris
    """
    from lanterna.sim.district import SimError, resolve_site

    _name("site", name)
    try:
        lat, lon, tz = resolve_site(name, lat, lon, tz)
    except SimError as e:
        raise click.UsageError(str(e)) from None
    _in_range("--lat", lat, -90, 90)
    _in_range("--lon", lon, -180, 180)
    _check_tz(tz)
    store = c.store()
    new = store.site(name) is None
    store.put_site(name, lat, lon, tz)
    if as_json:
        emit_json(store.site(name))
        return
    click.echo(f"{'added' if new else 'updated'} site {name}: {lat:g}, {lon:g}, {tz}")


@site.command("list")
@json_option
@pass_ctx
@store_errors
def site_list(c: Ctx, as_json: bool) -> None:
    """The sites, with how many nodes each has."""
    store = c.store()
    sites = [dict(s, nodes=len(store.nodes(site=s["name"]))) for s in store.sites()]
    if as_json:
        emit_json(sites)
        return
    rows = [(s["name"], f"{s['lat']:g}", f"{s['lon']:g}", s["tz"], s["nodes"]) for s in sites]
    click.echo(table(("site", "lat", "lon", "tz", "nodes"), rows, right=(1, 2, 4)))


# -- nodes -------------------------------------------------------------------------------


def _read_key(key_hex: str | None, key_file: Path | None) -> bytes:
    if (key_hex is None) == (key_file is None):
        raise click.UsageError("give the node's key with --key-file FILE (or --key HEX)")
    if key_file is not None:
        source = f"--key-file {key_file}"
        try:
            if str(key_file) == "-":
                text = sys.stdin.read()
            else:
                text = key_file.read_text()
        except OSError as e:
            raise malformed(f"{source}: cannot read it: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise malformed(f"{source}: not text") from None
    else:
        source, text = "--key", key_hex or ""
    text = text.strip()
    # Never echo the value: a near-miss key is still most of a secret.
    if len(text) != 64 or re.fullmatch(r"[0-9a-fA-F]*", text) is None:
        raise malformed(f"{source}: expected the key as 64 hex digits (32 bytes)")
    return bytes.fromhex(text)


def _coap(spec: str | None) -> tuple[str | None, int | None]:
    if spec is None:
        return None, None
    host, _, port = spec.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:5683
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise malformed(f"--coap {spec!r}: expected HOST:PORT")
    return host, int(port)


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
    from lamp.board import BoardError, load
    from lanterna.paths import board_file, boards_dir

    _name("node", node_id)
    key = _read_key(key_hex, key_file)
    path = board_file(board_name)
    if not path.exists() and path.parent == boards_dir():
        known = ", ".join(sorted(p.stem for p in boards_dir().glob("*.json")))
        raise malformed(f"--board {board_name!r}: no such board (known: {known})")
    try:
        board = load(str(path))
    except BoardError as e:
        raise malformed(str(e)) from None
    if (lat is None) != (lon is None):
        raise click.UsageError("give both --lat and --lon, or neither")
    _in_range("--lat", lat, -90, 90)
    _in_range("--lon", lon, -180, 180)
    _in_range("--rated-w", rated_w, 0.1, 100_000)
    host, port = _coap(coap)
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
@json_option
@pass_ctx
@store_errors
def node_list(c: Ctx, site: str | None, group: str | None, as_json: bool) -> None:
    """The registered nodes (never their keys).

    \b
    Example:
      lanterna node list --site greenwich --json
    """
    nodes = [n.public() for n in _select(c.store(), site, group, ())]
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


# -- groups ------------------------------------------------------------------------------


@cli.group()
def group() -> None:
    """Groups of nodes, the unit commands and schedules are sent to."""


@group.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the group is for.")
@json_option
@pass_ctx
@store_errors
def group_create(c: Ctx, name: str, description: str, as_json: bool) -> None:
    """Create a group, or change its description.

    \b
    Example:
      lanterna group create high-street --description "Trafalgar Road, 12 poles"
    """
    if not name.strip():
        raise malformed("group: the name is empty")
    store = c.store()
    new = all(g["group"] != name for g in store.groups())
    store.put_group(name, description)
    if as_json:
        emit_json(_group(store, name))
    else:
        click.echo(f"{'created' if new else 'updated'} group {name}")


@group.command("delete")
@click.argument("name")
@json_option
@pass_ctx
@store_errors
def group_delete(c: Ctx, name: str, as_json: bool) -> None:
    """Delete a group (its nodes stay registered)."""
    c.store().remove_group(name)
    if as_json:
        emit_json({"removed": name})
    else:
        click.echo(f"deleted group {name}")


@group.command("add")
@click.argument("name")
@click.argument("node_ids", metavar="NODE...", nargs=-1, required=True)
@json_option
@pass_ctx
@store_errors
def group_add(c: Ctx, name: str, node_ids: tuple[str, ...], as_json: bool) -> None:
    """Put nodes in a group (all or none: an unknown node changes nothing).

    \b
    Example:
      lanterna group add high-street greenwich-001 greenwich-002
    """
    store = c.store()
    store.group_add(name, node_ids)
    _group_done(store, name, as_json)


@group.command("remove")
@click.argument("name")
@click.argument("node_ids", metavar="NODE...", nargs=-1, required=True)
@json_option
@pass_ctx
@store_errors
def group_remove(c: Ctx, name: str, node_ids: tuple[str, ...], as_json: bool) -> None:
    """Take nodes out of a group (they stay registered)."""
    store = c.store()
    for n in node_ids:
        store.node(n)  # an unknown name is a mistake worth exit 3, not a silent no-op
    store.group_remove(name, node_ids)
    _group_done(store, name, as_json)


def _group(store: Store, name: str) -> dict[str, Any]:
    for g in store.groups():
        if g["group"] == name:
            return dict(g, nodes=[n.id for n in store.nodes(group=name)])
    raise UnknownGroup(f"unknown group {name!r}")


def _group_done(store: Store, name: str, as_json: bool) -> None:
    g = _group(store, name)
    if as_json:
        emit_json(g)
    else:
        click.echo(f"group {name}: {_count(len(g['nodes']), 'node')}")


@group.command("list")
@json_option
@pass_ctx
@store_errors
def group_list(c: Ctx, as_json: bool) -> None:
    """The groups, with how many nodes each has."""
    groups = c.store().groups()
    if as_json:
        emit_json(groups)
        return
    rows = [(g["group"], g["nodes"], g["description"]) for g in groups]
    click.echo(table(("group", "nodes", "description"), rows, right=(1,)))


@group.command("show")
@click.argument("name")
@json_option
@pass_ctx
@store_errors
def group_show(c: Ctx, name: str, as_json: bool) -> None:
    """A group and the status of its nodes."""
    store = c.store()
    g = _group(store, name)
    status = store.status(store.nodes(group=name))
    if as_json:
        emit_json(dict(g, nodes=[_status_json(s) for s in status]))
        return
    click.echo(f"group {name}: {g['description'] or '(no description)'}")
    click.echo(_status_table(status) if status else "no nodes")

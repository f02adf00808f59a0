"""`lanterna group`: groups of nodes, the unit commands and schedules are sent to."""

from __future__ import annotations

from typing import Any

import click

from lanterna.cli.format import _count, _status_json, _status_table
from lanterna.cli.options import json_option, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.context import Ctx, store_errors
from lanterna.errors import malformed
from lanterna.store import Store, UnknownGroup


@click.group()
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


COMMANDS = [group]

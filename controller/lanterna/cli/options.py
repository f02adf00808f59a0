"""Option sets shared by the commands, so one option means one thing everywhere.

- global options (``--db``, ``--broker``): on the root and after any subcommand;
- the node selection of commands (``--node/--group/--site/--all``, exactly one kind) and
  the narrowing of views (``--node/--group/--site``, any);
- a site's location (``--lat/--lon/--tz``), the topic prefix, ``--json``;
- ``pass_ctx``: the lanterna.context.Ctx every command receives.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import click

from lanterna.context import Ctx
from lanterna.wire.topics import PREFIX

F = Callable[..., Any]

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _apply(fn: F, options: Sequence[Callable[[Any], Any]]) -> F:
    for o in reversed(options):
        fn = o(fn)
    return fn


# -- global options ---------------------------------------------------------------------

DB_HELP = (
    "The store: a SQLite file, or postgresql://USER@HOST:PORT/DB. Default: $LANTERNA_DB,"
    " else $LANTERNA_HOME/lanterna.db, else per user."
)
# A str, not a click.Path: a Path would fold the URL's '//' (lanterna.context.Ctx.target)
DB_TYPE = click.STRING
BROKER_HELP = "mqtt://HOST:PORT or mqtts://HOST:PORT. Default: $LANTERNA_BROKER."


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None:
        setattr(ctx.ensure_object(Ctx), "db" if param.name == "db" else "broker_url", value)


def global_params() -> list[click.Option]:
    """--db and --broker as a subcommand's own options: given after the subcommand they
    set the same Ctx fields as before it (the later one wins)."""
    return [
        click.Option(
            ["--db"],
            type=DB_TYPE,
            metavar="FILE|URL",
            expose_value=False,
            callback=_set_global,
            help=DB_HELP + " (Global: also before the command.)",
        ),
        click.Option(
            ["--broker", "broker_url"],
            expose_value=False,
            callback=_set_global,
            help=BROKER_HELP + " (Global: also before the command.)",
        ),
    ]


def add_global_options(group: click.Group) -> None:
    """Every command below `group` accepts the global options too, unless it has an
    option of that name of its own (`lanterna sim --broker` is the nodes' broker)."""
    for cmd in group.commands.values():
        if isinstance(cmd, click.Group):
            add_global_options(cmd)
            continue
        taken = {o for p in cmd.params for o in getattr(p, "opts", ())}
        cmd.params.extend(p for p in global_params() if not taken.intersection(p.opts))


# -- output -----------------------------------------------------------------------------


def json_option(fn: F) -> F:
    """Give a command ``--json``; the command receives it as ``as_json``."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def prefix_option(fn: F) -> F:
    """The topic prefix (hidden: a deployment changes it, a user seldom does)."""
    return click.option("--prefix", default=PREFIX, show_default=True, hidden=True)(fn)


# -- which nodes ------------------------------------------------------------------------

SELECTION = [
    click.option("--node", "node_ids", multiple=True, help="A node (repeatable)."),
    click.option("--group", help="Every node of a group."),
    click.option("--site", help="Every node of a site."),
    click.option("--all", "all_nodes", is_flag=True, help="Every node in the store."),
]


def selection(fn: F) -> F:
    """--node/--group/--site/--all: the nodes a command goes to (exactly one kind)."""
    return _apply(fn, SELECTION)


def narrowing(fn: F) -> F:
    """--node/--group/--site: the part of the fleet a view shows (any, combined)."""
    return _apply(
        fn,
        [
            click.option("--site", help="Only the nodes of this site."),
            click.option("--group", help="Only the nodes of this group."),
            click.option("--node", "node_ids", multiple=True, help="This node (repeatable)."),
        ],
    )


# -- where ------------------------------------------------------------------------------


def location(required: bool = False, note: str = "") -> Callable[[F], F]:
    """--lat/--lon/--tz of a site; `note` qualifies the latitude's help."""

    def deco(fn: F) -> F:
        return _apply(
            fn,
            [
                click.option(
                    "--lat",
                    required=required,
                    type=click.FloatRange(-90, 90),
                    help=f"Site latitude{note}.",
                ),
                click.option(
                    "--lon",
                    required=required,
                    type=click.FloatRange(-180, 180),
                    help="Site longitude.",
                ),
                click.option(
                    "--tz",
                    required=required,
                    help="Site time zone: IANA name (Europe/Rome) or POSIX TZ string.",
                ),
            ],
        )

    return deco


def listen_option(default: str) -> Callable[[F], F]:
    """--listen HOST:PORT of a server the CLI runs (port 0: any free port, printed)."""
    return click.option(
        "--listen",
        default=default,
        show_default=True,
        help="HOST:PORT to serve on (port 0: any free port, printed).",
    )

"""The ``lanterna`` command: a thin layer that parses, calls the library, and renders.

This package is the only one that imports click. The root group and ``main()`` live here;
each command group lives whole in its own module (``lanterna.cli.node`` holds every
``lanterna node`` command) and is added below, so no module imports this one back.
Library errors (lanterna.errors.LanternaError) carry their exit status; the root group
renders each as one line on stderr with that status, never a traceback. The global
options ``--db`` and ``--broker`` are accepted before the command and after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lanterna import __version__
from lanterna.cli import (
    audit,
    board,
    bridge,
    broker,
    commands,
    demo,
    doctor,
    energy,
    export,
    firmware,
    flash,
    group,
    node,
    ota,
    provision,
    schedule,
    serve,
    sim,
    site,
    talq,
    user,
    vboard,
    views,
    web,
)
from lanterna.cli.options import BROKER_HELP, DB_HELP, add_global_options
from lanterna.context import Ctx
from lanterna.errors import LanternaError


class CliError(click.ClickException):
    """A library error as click shows it: ``Error: <message>``, exit status its own."""

    def __init__(self, e: LanternaError) -> None:
        super().__init__(e.message)
        self.exit_code = e.exit_code  # type: ignore[misc]  # click declares it on the class


class Root(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LanternaError as e:
            raise CliError(e) from None


@click.group(cls=Root)
@click.version_option(__version__, prog_name="lanterna")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), help=DB_HELP)
@click.option("--broker", "broker_url", help=BROKER_HELP)
@click.pass_context
def cli(ctx: click.Context, db: Path | None, broker_url: str | None) -> None:
    """Lanterna: smart street lighting, from the lamp post to the fleet.

    \b
    Examples:
      lanterna board check boards/esp32-devkitc.json
      lanterna firmware build --out build/firmware
      lanterna node run --board sim --warp 60
      lanterna serve --broker mqtt://127.0.0.1:1883   (global options go after too)
    """
    c = ctx.ensure_object(Ctx)
    c.db, c.broker_url = db, broker_url
    ctx.call_on_close(c.close)


for _module in (board, firmware, node, site, group, schedule, commands, views, energy, ota,
                broker, provision, doctor, flash, vboard, serve, sim, demo, bridge,
                export, user, audit, web, talq):  # fmt: skip
    for _cmd in _module.COMMANDS:
        cli.add_command(_cmd)
add_global_options(cli)


def main() -> None:
    cli(prog_name="lanterna")

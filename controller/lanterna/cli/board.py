"""`lanterna board check`: board files (pins, peripherals, heap budget; docs/boards.md)."""

from __future__ import annotations

import click

from lanterna.boards import load_board
from lanterna.cli.options import json_option
from lanterna.cli.output import emit_json, table


@click.group()
def board() -> None:
    """Board files: pins, peripherals and heap budget of a controller board."""


@board.command("check")
@click.argument("boards", nargs=-1, required=True)
@json_option
def board_check(boards: tuple[str, ...], as_json: bool) -> None:
    """Validate board files (by name or path); exit 4 at the first bad one.

    \b
    Example:
      lanterna board check sim esp32-devkitc ./my-board.json
    """
    checked = [load_board(b) for b in boards]
    if as_json:
        emit_json(checked)
        return
    rows = [(b["name"], b["chip"], b["network"], b["heap"], b["pwm"]["pin"]) for b in checked]
    click.echo(table(("board", "chip", "network", "heap", "pwm pin"), rows, right=(3, 4)))


COMMANDS = [board]

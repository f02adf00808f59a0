"""`lanterna flash`: MicroPython's base firmware onto a board, with esptool (thin over
lanterna.device.flash). Exit statuses as everywhere (docs/cli.md): 1 esptool failed (the port,
the chip), 4 a bad board name or an image that is not for the board."""

from __future__ import annotations

from pathlib import Path

import click

from lanterna.boards import load_board
from lanterna.cli.options import json_option
from lanterna.cli.output import emit_json
from lanterna.device import flash as fl
from lanterna.errors import EXIT_FAILED, EXIT_MALFORMED, LanternaError


@click.command("flash")
@click.option("--port", required=True, help="Serial port, e.g. /dev/ttyUSB0 or rfc2217://...")
@click.option("--board", "board_name", required=True, help="Board name or file.")
@click.option(
    "--image",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="MicroPython's firmware for the board's chip (.bin), brought along: nothing is "
    "downloaded.",
)
@click.option("--erase", is_flag=True, help="Erase the whole flash first (the filesystem too).")
@click.option("--baud", type=click.IntRange(9600, 5000000), help="Default: the board file's.")
@click.option("--dry-run", is_flag=True, help="Print the esptool command; run nothing.")
@json_option
def flash(
    port: str,
    board_name: str,
    image: Path,
    erase: bool,
    baud: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Write MicroPython to a board with esptool, at the chip and offset its board file
    names. The image is checked first: an ESP image built for the board's chip.

    \b
    Example:
      lanterna flash --port /dev/ttyUSB0 --board esp32-devkitc \\
          --image ESP32_GENERIC-v1.26.1.bin --dry-run
    """
    board = load_board(board_name)
    try:
        p = fl.plan(board, port, image, erase, baud)
    except fl.FlashError as e:
        raise LanternaError(str(e), EXIT_MALFORMED) from None
    if as_json:
        emit_json({"argv": p.argv, "chip": p.chip, "offset": p.offset, "dry_run": dry_run})
    elif dry_run:
        click.echo(p.shell)
    if dry_run:
        return
    click.echo(
        f"flashing {image} to {port} ({board['name']}, {p.chip} at 0x{p.offset:x})", err=True
    )
    try:
        fl.run(p)
    except fl.FlashError as e:
        raise LanternaError(str(e), EXIT_FAILED) from None


COMMANDS = [flash]

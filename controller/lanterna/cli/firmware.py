"""`lanterna firmware build`: the node firmware compiled with mpy-cross, with its sizes."""

from __future__ import annotations

from pathlib import Path

import click

from lanterna.boards import load_board
from lanterna.cli.options import json_option
from lanterna.cli.output import emit_json, table
from lanterna.device import firmware as fw


@click.group()
def firmware() -> None:
    """The node firmware: compile and measure."""


@firmware.command("build")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("build/firmware"), show_default=True
)
@click.option(
    "--board",
    "board_name",
    help="Only what this board's image holds (its chip's manifest, docs/firmware.md).",
)
@json_option
def firmware_build(out: Path, board_name: str | None, as_json: bool) -> None:
    """Compile every firmware module (or a board's image) with mpy-cross into OUT and
    print their sizes.

    \b
    Example:
      lanterna firmware build --board esp32-devkitc --out build/esp32
    """
    manifest = () if board_name is None else fw.manifest_for_chip(load_board(board_name)["chip"])
    modules = fw.build(out, manifest=manifest)
    total = sum(m.bytes for m in modules)
    if as_json:
        emit_json({"modules": [m.__dict__ for m in modules], "total_bytes": total})
        return
    rows = [(m.path, m.source_bytes, m.bytes) for m in modules]
    rows.append(("total", sum(m.source_bytes for m in modules), total))
    click.echo(table(("module", "source bytes", "bytes"), rows, right=(1, 2)))


COMMANDS = [firmware]

"""`lanterna firmware build`: the node firmware compiled with mpy-cross, with its sizes."""

from __future__ import annotations

from pathlib import Path

import click

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
@json_option
def firmware_build(out: Path, as_json: bool) -> None:
    """Compile every firmware module with mpy-cross into OUT and print their sizes."""
    modules = fw.build(out)
    total = sum(m.bytes for m in modules)
    if as_json:
        emit_json({"modules": [m.__dict__ for m in modules], "total_bytes": total})
        return
    rows = [(m.path, m.source_bytes, m.bytes) for m in modules]
    rows.append(("total", sum(m.source_bytes for m in modules), total))
    click.echo(table(("module", "source bytes", "bytes"), rows, right=(1, 2)))


COMMANDS = [firmware]

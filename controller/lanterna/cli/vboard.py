"""`lanterna virtual-board`: a MicroPython board on a TCP port for mpremote
(lanterna.sim.vboard, docs/virtual-board.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from lanterna.cli.options import listen_option
from lanterna.cli.params import host_port


def _heap(value: str | None) -> int | None:
    if value is None:
        return None
    from lamp.board import parse_heap

    try:
        return parse_heap(value)
    except ValueError:
        raise click.BadParameter(f"expected a size like 150K, got {value!r}") from None


@click.command("virtual-board")
@listen_option("127.0.0.1:2323")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The board's flash: a directory that stands for its filesystem (created).",
)
@click.option("--board", "board_name", default="sim", show_default=True, help="Board name or file.")
@click.option(
    "--heap",
    help="The MicroPython heap (e.g. 150K); default: the board's budget plus the slot "
    "image the sandbox holds plus what the virtual board itself uses.",
)
def virtual_board(listen: str, root: Path, board_name: str, heap: str | None) -> None:
    """A MicroPython board served as a raw-REPL device on a TCP port, until SIGINT or
    SIGTERM: mpremote reaches it as socket://HOST:PORT. Code runs in a MicroPython unix
    process whose filesystem is the --root directory; boot.py and main.py there run at
    power on and after a soft reset from the friendly REPL. One client at a time (later
    ones wait); a client that leaves does not stop the board.

    \b
    Example:
      lanterna virtual-board --listen 127.0.0.1:2323 --root board-fs --board sim
      mpremote connect socket://127.0.0.1:2323 fs cp main.py : + fs ls
    """
    from lanterna.sim.vboard import Board, VBoardError, serve

    host, port = host_port(listen)
    heap_bytes = _heap(heap)
    root.mkdir(parents=True, exist_ok=True)

    def listening(p: int) -> None:
        click.echo(f"virtual board {board_name} on socket://{host}:{p}, flash {root}")

    async def main() -> None:
        await serve(Board(root, board_name, heap_bytes), host, port, listening)

    try:
        asyncio.run(main())
    except VBoardError as e:
        raise click.ClickException(str(e)) from None


COMMANDS = [virtual_board]

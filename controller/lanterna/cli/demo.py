"""`lanterna demo` (what `make demo` runs): a virtual district end to end (lanterna.sim.demo)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build/demo"),
    show_default=True,
    help="Store, broker and node state of the demo (emptied first).",
)
@click.option("--nodes-per-site", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--warp", type=click.IntRange(1, 3600), default=120, show_default=True)
@click.option("--seconds", type=click.FloatRange(5, 3600), default=60, show_default=True)
@click.option(
    "--keep", is_flag=True, help="Keep the district and the console running until Ctrl-C."
)
def demo(home: Path, nodes_per_site: int, warp: int, seconds: float, keep: bool) -> None:
    """A virtual district of Greenwich, Porta Romana and Baixa, end to end: mosquitto,
    30 lamp posts, serve, a schedule push, live status, an energy report, and the web
    console (its address and a one-time operator password are printed)."""
    from lanterna.sim.demo import run_demo

    raise SystemExit(run_demo(home.resolve(), nodes_per_site, warp, seconds, keep))


COMMANDS = [demo]

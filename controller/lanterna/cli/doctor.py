"""`lanterna doctor --port PORT`: the commissioning check at the pole (thin over
lanterna.device.doctor). Exit statuses as everywhere (docs/cli.md): 0 every check passed,
5 the node cannot reach its broker, 1 any other check failed or the board did not answer."""

from __future__ import annotations

import sys

import click

from lanterna.cli.options import json_option
from lanterna.cli.output import emit_json, table
from lanterna.device import doctor as dr
from lanterna.errors import EXIT_BROKER, EXIT_FAILED


@click.command("doctor")
@click.option("--port", required=True, help="The board: /dev/ttyUSB0, socket://HOST:PORT, ...")
@click.option(
    "--no-reset", is_flag=True, help="Leave the board at the REPL (default: reset, the node runs)."
)
@click.option("--timeout", type=click.FloatRange(5, 600), default=60, show_default=True)
@json_option
def doctor(port: str, no_reset: bool, timeout: float, as_json: bool) -> None:
    """Check a board as commissioned: firmware and MicroPython, slot and OTA state, heap
    and flash, clock, network, the broker as the node reaches it, the last reset, the
    lamp. Stops the node while it looks (mpremote's Ctrl-C) and resets the board after.

    \b
    Example:
      lanterna doctor --port /dev/ttyUSB0
      lanterna doctor --port socket://127.0.0.1:2323 --json
    """
    facts = dr.probe(port, timeout)
    if not no_reset:
        dr.resume(port)
    cs = dr.checks(facts)
    failed = [c for c in cs if not c.ok]
    if as_json:
        emit_json({"port": port, "ok": not failed, "checks": dr.as_dicts(cs), "facts": facts})
    else:
        rows = [(c.name, "ok" if c.ok else "FAIL", c.value, c.detail) for c in cs]
        click.echo(table(("check", "result", "value", "detail"), rows))
        for c in failed:
            click.echo(f"error: {c.name}: {c.detail or c.value}", err=True)
    if failed:
        sys.exit(EXIT_BROKER if failed[0].name == "broker" else EXIT_FAILED)


COMMANDS = [doctor]

"""`lanterna audit`: the audit log (lanterna.audit), newest first; and ``note``, how
every CLI command that changes something writes its record.

A record is written after the command is done (the nodes have been told, the operator
added): a store that cannot take it then must not hide what the command did, so the
failure is one warning line on stderr and the command's own result stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from lanterna.audit import Audit, cli_who
from lanterna.cli.options import json_option, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.cli.params import when
from lanterna.context import Ctx, store_errors
from lanterna.errors import malformed


def note(
    ctx: Ctx,
    action: str,
    target: str,
    nodes: Sequence[str],
    args: dict[str, Any],
    result: str,
    detail: str | None = None,
) -> None:
    """Write the audit record of a CLI command; on failure, warn on stderr."""
    try:
        Audit(ctx.store()).record(cli_who(), "cli", action, target, nodes, args, result, detail)
    except Exception as e:  # any store failure: the command itself is done already
        click.echo(f"warning: the audit record could not be written: {e}", err=True)


def _local(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


@click.command("audit")
@click.option(
    "--limit", type=click.IntRange(min=1), default=200, show_default=True, help="At most N."
)
@click.option("--who", help="Only this operator (web) or OS user (cli).")
@click.option(
    "--action", help="Only this action (dim, user.add); a family without a dot (rollout)."
)
@click.option("--since", metavar="WHEN", help="From this ISO date or date-time (UTC if bare).")
@click.option("--until", metavar="WHEN", help="Before this ISO date or date-time.")
@json_option
@pass_ctx
@store_errors
def audit(
    ctx: Ctx,
    limit: int,
    who: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Who did what to which nodes, from the web console or the CLI, and what came of
    it; newest first. Times are shown in the local zone.

    \b
    Examples:
      lanterna audit --limit 20
      lanterna audit --who alice --action rollout --since 2026-12-01
      lanterna audit --action dim --since 2026-12-02T18:00 --until 2026-12-03 --json
    """
    t0 = when("--since", since) if since else None
    t1 = when("--until", until) if until else None
    if t0 is not None and t1 is not None and t1 <= t0:
        raise malformed(f"--until {until} is not after --since {since}")
    rows = Audit(ctx.store()).list(limit, who=who, since=t0, until=t1, action=action)
    if as_json:
        emit_json(rows)
        return
    click.echo(
        table(
            ("at", "who", "via", "action", "target", "nodes", "result"),
            [
                (
                    _local(r["at"]),
                    r["who"],
                    r["via"],
                    r["action"],
                    r["target"],
                    r["nodes"][0] if len(r["nodes"]) == 1 else len(r["nodes"]),
                    r["result"],
                )
                for r in rows
            ],
        )
    )


COMMANDS = [audit]

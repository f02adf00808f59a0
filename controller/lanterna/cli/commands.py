"""Commands to nodes: `lanterna dim`, `identify`, `reboot` (and the sending that
`lanterna schedule push` shares).

Targets: ``--node N`` (repeatable), ``--group G``, ``--site S`` or ``--all``, exactly one
kind. Each command is signed per node, sent to all at once and settled as the acks come
(lanterna.fleet.commander, lanterna.fleet.fanout); a progress bar (answers of total, and
their rate) runs on stderr; the end is a per-node table (or ``--json``) with every node's
status: ok, error, timeout (the broker took it, no answer) or unsent (it never reached the
broker). Exit status 1 when any node failed, did not answer or was not reached.

Every send is in the audit log (lanterna.audit, `lanterna audit`): who, what, which
nodes and what came of it, or why nothing was sent; a schedule as its id and sha256.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from lamp.cmd.args import ARGS
from lanterna.audit import outcome_detail, outcome_result, schedule_args, target_of
from lanterna.cli.audit import note
from lanterna.cli.options import SELECTION, json_option, pass_ctx, prefix_option
from lanterna.cli.output import emit_json, table
from lanterna.cli.params import Duration, Level
from lanterna.context import Ctx, store_errors
from lanterna.errors import EXIT_BROKER, EXIT_FAILED, LanternaError, malformed

# The ranges are the node's own argument table (lamp.cmd.args): what the CLI accepts is
# what a node accepts.
MAX_HOLD_S = ARGS["dim"]["until_s"][2]  # a dim override's longest hold (docs/commands.md)


def targets(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--node/--group/--site/--all, --via, --timeout, --retries, --json."""
    opts: list[Callable[[Any], Any]] = [
        *SELECTION,
        click.option(
            "--via",
            type=click.Choice(["mqtt", "coap"]),
            default="mqtt",
            show_default=True,
            help="coap: straight to each node's CoAP server (dim and schedule only).",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=10.0,
            show_default=True,
            help="Seconds to wait for each node's answer.",
        ),
        click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True),
        prefix_option,
        json_option,
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def select_nodes(ctx: Ctx, node_ids, group, site, all_nodes):
    kinds = sum(bool(x) for x in (node_ids, group, site, all_nodes))
    if kinds != 1:
        raise click.UsageError("give exactly one of --node, --group, --site, --all")
    store = ctx.store()
    if node_ids:
        return store.nodes(ids=list(dict.fromkeys(node_ids)))
    nodes = store.nodes(site=site, group=group)
    if not nodes:
        raise LanternaError("no nodes to command: the selection is empty", EXIT_FAILED)
    return nodes


def send(ctx: Ctx, cmd: str, args: dict[str, Any], o: dict[str, Any]) -> list:
    from lanterna.fleet.commander import Commander, SendError

    nodes = select_nodes(ctx, o["node_ids"], o["group"], o["site"], o["all_nodes"])
    commander = Commander(ctx.store(), o["prefix"])
    what = f"{cmd} to {len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    # The bar appears once the first answer is in: a broker that cannot be reached is
    # one line of error, with no bar before it. It counts settled nodes (acked, refused,
    # timed out) against the total, with the rate of answers.
    t0 = time.monotonic()
    settled = [0]

    def rate(_o) -> str:
        dt = max(time.monotonic() - t0, 1e-3)
        return f"{settled[0] / dt:.0f}/s" if settled[0] else ""

    bar = click.progressbar(
        length=len(nodes), label=what, file=sys.stderr, show_pos=True, item_show_func=rate
    )
    shown: list[bool] = []

    def progress(o) -> None:
        if not shown:
            bar.__enter__()
            shown.append(True)
        settled[0] += 1
        bar.update(1, current_item=o)

    audit = (
        cmd,
        target_of(o["node_ids"], o["group"], o["site"], o["all_nodes"]),
        [n.id for n in nodes],
        schedule_args(args["schedule"]) if cmd == "schedule" else args,
    )
    try:
        if o["via"] == "coap":
            outs = commander.send_coap(nodes, cmd, args, o["timeout"], o["retries"], progress)
        else:
            outs = commander.send_mqtt(
                ctx.broker(), nodes, cmd, args, o["timeout"], o["retries"], progress
            )
    except SendError as e:
        if shown:
            bar.__exit__(None, None, None)
            shown.clear()
        note(ctx, *audit, f"not sent: {e}")
        code = EXIT_BROKER if str(e).startswith("broker") else EXIT_FAILED
        raise LanternaError(str(e), code) from None
    finally:
        if shown:
            bar.__exit__(None, None, None)
    # Recorded before anything is printed: the table (or the JSON) stays the last output.
    note(ctx, *audit, outcome_result(outs), outcome_detail(outs))
    if o["as_json"]:
        emit_json([x.as_json() for x in outs])
    else:
        rows = []
        for x in outs:
            if x.status == "ok":
                res = ", ".join(f"{k}={v}" for k, v in sorted((x.result or {}).items()))
            else:
                res = f"{x.error or x.status}: {x.detail or ''}".strip()
            rows.append((x.node, x.status, x.attempts, "" if x.ms is None else x.ms, res))
        click.echo(table(("node", "result", "tries", "ms", "detail"), rows, right=(2, 3)))
        click.echo(outcome_result(outs), err=True)
    return outs


def finish(ctx: Ctx, outs: list) -> None:
    if any(x.status != "ok" for x in outs):
        ctx.close()
        raise SystemExit(EXIT_FAILED)


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(ctx: Ctx, **kw: Any) -> None:
        cmd, args = fn(**{k: kw.pop(k) for k in list(kw) if k in fn.__code__.co_varnames})
        finish(ctx, send(ctx, cmd, args, kw))

    return store_errors(wrapper)


@click.command("dim")
@click.argument("level", type=Level())
@click.option(
    "--fade", type=click.FloatRange(0, ARGS["dim"]["fade_s"][2]), default=0, help="Fade time, s."
)
@click.option(
    "--for",
    "for_",
    type=Duration(most=MAX_HOLD_S),
    metavar="DURATION",
    help="Hold, then back to the schedule (30m, 2h; at most 7 days).",
)
@targets
@pass_ctx
@command
def dim(level: int | None, fade: float, for_: int | None) -> tuple[str, dict[str, Any]]:
    """Set the lamp LEVEL (0-100 %) as an override, or `auto` to end the override.

    \b
    Examples:
      lanterna dim 30 --site greenwich
      lanterna dim 100 --node greenwich-004 --for 2h --fade 5
      lanterna dim auto --group high-street
    """
    args: dict[str, Any] = {"fade_s": int(round(fade)), "level": level}
    if for_:
        if level is None:
            raise malformed("--for: nothing to hold with `auto`")
        args["until_s"] = for_
    return "dim", args


@click.command("identify")
@click.option(
    "--seconds",
    type=click.IntRange(*ARGS["identify"]["seconds"][1:]),
    default=10,
    show_default=True,
)
@targets
@pass_ctx
@command
def identify(seconds: int) -> tuple[str, dict[str, Any]]:
    """Blink the status LED and dip the lamp once a second, to find the pole in the street."""
    return "identify", {"seconds": seconds}


@click.command("reboot")
@click.option(
    "--delay", type=click.IntRange(*ARGS["reboot"]["delay_s"][1:]), default=1, show_default=True
)
@targets
@pass_ctx
@command
def reboot(delay: int) -> tuple[str, dict[str, Any]]:
    """Restart the node's firmware (the lamp comes back to its last level first)."""
    return "reboot", {"delay_s": delay}


COMMANDS = [dim, identify, reboot]

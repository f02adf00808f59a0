"""`lanterna serve`: ingest what the fleet publishes into the store (lanterna.fleet.ingest)."""

from __future__ import annotations

import signal
import threading

import click

from lanterna.cli.options import pass_ctx
from lanterna.cli.output import emit_json
from lanterna.context import Ctx
from lanterna.errors import EXIT_BROKER, LanternaError
from lanterna.wire.topics import PREFIX


@click.command("serve")
@click.option("--prefix", default=PREFIX, show_default=True, help="Topic prefix.")
@click.option("--batch", type=click.IntRange(1, 10000), default=500, show_default=True)
@click.option(
    "--report-s",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines on stderr.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@pass_ctx
def serve(ctx: Ctx, prefix: str, batch: int, report_s: float, as_json: bool) -> None:
    """Ingest status, state, telemetry and events from the broker into the store, until
    SIGTERM or Ctrl-C (then everything received is committed before exit).

    \b
    Example:
      lanterna --broker mqtt://127.0.0.1:1883 serve
    """
    from lanterna.fleet.ingest import BrokerUnreachable, Ingest

    broker = ctx.broker()
    store = ctx.store()  # migrations run here, before the writer opens its own connection
    ing = Ingest(str(store.path), broker, prefix, batch=batch)
    try:
        ing.start()
    except BrokerUnreachable as e:
        raise LanternaError(str(e), EXIT_BROKER) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"serving {broker.url} {prefix}/# into {store.path}", err=True)

    def report(s) -> None:
        j = s.as_json()
        click.echo(
            f"stored {j['stored']} ({j['rate_per_s']}/s), skipped {j['skipped']}, "
            f"queue {ing.q.qsize()}, {'connected' if ing.connected.is_set() else 'RECONNECTING'}",
            err=True,
        )

    try:
        ing.run_until(stop, report_s, report)
    finally:
        ing.stop()
    final = ing.stats.as_json()
    if as_json:
        emit_json(final)
    else:
        click.echo(
            f"stopped: stored {final['stored']} messages in {final['batches']} batches, "
            f"skipped {final['skipped']}"
        )


COMMANDS = [serve]

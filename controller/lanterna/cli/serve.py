"""`lanterna serve`: ingest what the fleet publishes into the store (lanterna.fleet.ingest);
with --workers N, N worker processes under a supervisor (lanterna.fleet.workers)."""

from __future__ import annotations

import signal
import threading

import click

from lanterna.cli.options import pass_ctx
from lanterna.cli.output import emit_json
from lanterna.context import Ctx
from lanterna.errors import EXIT_BROKER, EXIT_FAILED, LanternaError
from lanterna.wire.topics import PREFIX


@click.command("serve")
@click.option("--prefix", default=PREFIX, show_default=True, help="Topic prefix.")
@click.option("--batch", type=click.IntRange(1, 10000), default=1000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing the load (a shared subscription).",
)
@click.option(
    "--first-worker",
    type=click.IntRange(0, 9999),
    default=0,
    show_default=True,
    help="Index of the first worker: each worker of a store, on any host, needs its own "
    "(host A: --workers 2, host B: --workers 2 --first-worker 2).",
)
@click.option(
    "--share",
    is_flag=True,
    help="Join the store's shared subscription (implied by --workers above 1): give it "
    "to every serve of a store run on several hosts.",
)
@click.option(
    "--drain",
    is_flag=True,
    help="Retire worker --first-worker: store what its session holds, then end the "
    "session (after lowering --workers or moving a worker off a host).",
)
@click.option(
    "--report-s",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines on stderr.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@pass_ctx
def serve(
    ctx: Ctx,
    prefix: str,
    batch: int,
    workers: int,
    first_worker: int,
    share: bool,
    drain: bool,
    report_s: float,
    as_json: bool,
) -> None:
    """Ingest status, state, telemetry and events from the broker into the store, until
    SIGTERM or Ctrl-C (then everything received is committed before exit). Each worker
    has its own broker session, kept while it is away: what arrives meanwhile waits in
    the broker (`lanterna broker config --outage` sizes that queue).

    \b
    Examples:
      lanterna --broker mqtt://127.0.0.1:1883 serve
      lanterna serve --workers 4 --json
      lanterna serve --drain --first-worker 3    (after going from 4 workers to 3)
    """
    broker = ctx.broker()
    store = ctx.store()  # migrations run here, before the workers open their own connections
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if drain and workers > 1:
        raise click.UsageError("--drain retires one worker: give it with --first-worker K")
    if workers > 1:
        final = _supervise(ctx, store, broker, prefix, batch, workers, first_worker, report_s, stop)
    else:
        final = _one(store, broker, prefix, batch, first_worker, share, report_s, stop, drain)
    if as_json:
        emit_json(final)
    else:
        click.echo(
            f"stopped: stored {final['stored']} messages in {final['batches']} batches, "
            f"skipped {final['skipped']}"
            + (f", {final['restarts']} worker restarts" if "restarts" in final else "")
        )


def _dropped(total: int, new: int) -> None:
    click.echo(
        f"warning: the broker dropped {new} more messages ({total} since it started): a "
        "session's queue was full (serve away longer than `broker config --outage`?)",
        err=True,
    )


def _one(store, broker, prefix, batch, worker, share, report_s, stop, drain=False) -> dict:
    from lanterna.fleet.ingest import BrokerUnreachable, Ingest

    ing = Ingest(
        str(store.path),
        broker,
        prefix,
        batch=batch,
        worker=worker,
        shared=share,
        drain=drain,
        on_dropped=_dropped,
    )
    try:
        ing.start()
    except BrokerUnreachable as e:
        raise LanternaError(str(e), EXIT_BROKER) from None
    click.echo(f"serving {broker.url} {prefix}/# into {store.path} as worker {worker}", err=True)

    def report(s) -> None:
        j = s.as_json()
        click.echo(
            f"stored {j['stored']} ({j['rate_per_s']}/s), skipped {j['skipped']}, "
            f"{ing.pending} being committed, "
            f"{'connected' if ing.connected.is_set() else 'RECONNECTING'}",
            err=True,
        )

    try:
        ing.run_until(stop, report_s, report)
    finally:
        ing.stop()
    if drain and not stop.is_set():
        ing.forget_session()
        click.echo(f"worker {worker} drained and its session ended", err=True)
    return ing.stats.as_json()


def _supervise(ctx, store, broker, prefix, batch, n, first, report_s, stop) -> dict:
    from lanterna.fleet.workers import Supervisor, WorkerFailed, worker_argv, worker_env

    args = ["--prefix", prefix, "--batch", str(batch), "--report-s", str(report_s), "--share"]
    sup = Supervisor(worker_argv(str(store.path), args), first, n, worker_env(ctx.broker_url))
    try:
        sup.start()
    except WorkerFailed as e:
        code = EXIT_BROKER if e.code == EXIT_BROKER else EXIT_FAILED
        raise LanternaError(str(e), code) from None
    click.echo(
        f"serving {broker.url} {prefix}/# into {store.path} with workers "
        f"{first}..{first + n - 1} (pids {', '.join(map(str, sup.pids()))})",
        err=True,
    )
    try:
        sup.run_until(stop, lambda line: click.echo(line, err=True))
    finally:
        sup.stop()
    return sup.stats()


COMMANDS = [serve]

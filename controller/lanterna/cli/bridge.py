"""`lanterna bridge ngsi-ld`: the fleet on the city's NGSI-LD platform (lanterna.bridge;
the mapping and what is and is not tested against real brokers: docs/platform.md).
Exit statuses as everywhere (docs/cli.md): 4 a bad option value; 1 a `--once` that
left entities waiting (the platform did not take them); 6 the store."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from lanterna.cli.options import pass_ctx
from lanterna.cli.output import emit_json
from lanterna.context import Ctx, store_errors
from lanterna.errors import EXIT_FAILED, LanternaError, malformed

TOKEN_ENV = "LANTERNA_NGSI_TOKEN"


@click.group()
def bridge() -> None:
    """Bridges from the store to the city's platforms."""


@bridge.command("ngsi-ld")
@click.option("--url", required=True, help="The platform's base URL (http:// or https://).")
@click.option("--tenant", help="NGSI-LD tenant (the NGSILD-Tenant header).")
@click.option(
    "--context",
    "contexts",
    multiple=True,
    help="@context URL (repeatable; default: the Smart Data Models' Streetlighting, "
    "Environment and Transportation contexts and the NGSI-LD core context).",
)
@click.option(
    "--link",
    is_flag=True,
    help="Send application/json with the @context in a Link header (one --context) "
    "instead of application/ld+json with it in every entity.",
)
@click.option("--interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds between syncs.")  # fmt: skip
@click.option("--batch", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="Entities per upsert request.")  # fmt: skip
@click.option("--once", is_flag=True, help="One sync, then exit.")
@click.option("--full", is_flag=True, help="Compare every node, not only those heard from.")
@click.option("--resync", is_flag=True, help="Forget what was sent: send every entity again.")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="CA file for https.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True)
@click.option("--socket-type", default="Type2", show_default=True,
              help="The charge points' socket (Smart Data Models socketType).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print each sync's report as JSON.")
@pass_ctx
@store_errors
def ngsi_ld(
    ctx: Ctx,
    url: str,
    tenant: str | None,
    contexts: tuple[str, ...],
    link: bool,
    interval: float,
    batch: int,
    once: bool,
    full: bool,
    resync: bool,
    ca: str | None,
    timeout: float,
    socket_type: str,
    as_json: bool,
) -> None:
    """Keep the city's NGSI-LD platform in step with the store: every node a Streetlight,
    every group a StreetlightGroup, air sensors as AirQualityObserved, charge points as
    EVChargingStation (FIWARE Smart Data Models), sent by batch upsert, only what
    changed. What the platform cannot take now waits in the store's outbox, across
    restarts. A bearer token, if the platform needs one, is read from
    $LANTERNA_NGSI_TOKEN (never from the command line, never printed).

    \b
    Examples:
      lanterna bridge ngsi-ld --url http://orion-ld:1026 --once --json
      lanterna bridge ngsi-ld --url https://platform.city.example --tenant lighting
    """
    from lanterna.bridge import ngsi
    from lanterna.bridge.bridge import Bridge, Report
    from lanterna.bridge.client import Client, PlatformError

    SOCKETS = ("Type2", "Type3", "Mennekes", "Wall_Euro", "CCS/SAE", "CHAdeMO", "J-1772", "Other")
    if socket_type not in SOCKETS:
        raise malformed(f"--socket-type {socket_type!r}: one of {', '.join(SOCKETS)}")
    context = list(contexts) or [*ngsi.SDM_CONTEXTS, ngsi.CORE_CONTEXT]
    try:
        client = Client(
            url,
            tenant=tenant,
            context=context,
            link=link,
            token=os.environ.get(TOKEN_ENV) or None,
            cafile=ca,
            timeout=timeout,
        )
    except PlatformError as e:
        raise malformed(str(e)) from None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    store = ctx.store()
    b = Bridge(store, client, batch=batch, options=ngsi.Options(socket_type=socket_type))
    if resync:
        b.outbox.forget()

    def show(r: Report) -> None:
        if as_json:
            emit_json(r.as_json())
            return
        line = (
            f"queued {r.queued_entities} entities ({r.queued_attributes} attributes)"
            f"{' [full]' if r.full else ''}, sent {r.sent}, refused {r.refused}, "
            f"waiting {r.pending}"
        )
        click.echo(line + (f"; {r.error}" if r.error else ""), err=True)

    try:
        if once:
            r = b.once(full=full or resync)
            show(r)
            if r.pending:
                raise LanternaError(
                    f"{r.pending} entities still waiting for {url}: {r.error}", EXIT_FAILED
                )
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(f"bridging {store.backend} store to {client.url} every {interval} s", err=True)
        if full or resync:
            show(b.once(full=True, stop=stop))
        b.run(interval, stop, show)
    finally:
        client.close()


COMMANDS = [bridge]

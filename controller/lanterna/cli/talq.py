"""`lanterna talq-gateway`: the TALQ 2.7.1 Gateway API for a city's CMS (lanterna.talq,
docs/talq.md), served until Ctrl-C."""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from pathlib import Path
from typing import Any

import click

from lanterna.cli.options import listen_option, pass_ctx, prefix_option
from lanterna.cli.params import host_port
from lanterna.cli.web import bind
from lanterna.context import Ctx, store_errors
from lanterna.errors import LanternaError, malformed

log = logging.getLogger("lanterna.talq")
FILE = click.Path(dir_okay=False, path_type=Path)


def _check_files(**files: Path | None) -> None:
    for name, f in files.items():
        if f is not None and not f.is_file():
            raise malformed(f"--{name.replace('_', '-')} {f}: not found")


@click.command("talq-gateway")
@listen_option("127.0.0.1:8443")
@click.option(
    "--tls-cert",
    type=FILE,
    required=True,
    help="The gateway's certificate (PEM): served to the CMS, and shown to it as "
    "the client certificate when the gateway calls the CMS.",
)
@click.option("--tls-key", type=FILE, required=True, help="Its private key (PEM).")
@click.option(
    "--client-ca",
    type=FILE,
    required=True,
    help="The CA (PEM) that issues the CMS's client certificates: a request "
    "without one is refused in the TLS handshake.",
)
@click.option(
    "--cms-url",
    metavar="URL",
    help="The CMS API's base URI (https): register with it and push log reports "
    "and device changes to it.",
)
@click.option(
    "--cms-ca",
    type=FILE,
    help="The CA (PEM) to verify the CMS's server certificate (default: the system's).",
)
@click.option(
    "--cms-address",
    metavar="UUID",
    help="Without --cms-url: the CMS's TALQ address, the only clientAddress "
    "accepted (with --cms-url the CMS gives it at the bootstrap).",
)
@click.option(
    "--gateway-url",
    metavar="URL",
    help="How the CMS reaches this gateway (gatewayUri; default https://HOST:PORT/ of --listen).",
)
@prefix_option
@pass_ctx
@store_errors
def talq_gateway(
    c: Ctx,
    listen: str,
    tls_cert: Path,
    tls_key: Path,
    client_ca: Path,
    cms_url: str | None,
    cms_ca: Path | None,
    cms_address: str | None,
    gateway_url: str | None,
    prefix: str,
) -> None:
    """Serve the TALQ Gateway API: a TALQ-certified CMS reads the poles as devices,
    writes calendars and control programs, sends overrides to devices and groups, and
    collects log reports. Mutual TLS: the CMS shows a certificate of --client-ca.

    \b
    Example:
      lanterna talq-gateway --listen 0.0.0.0:8443 --tls-cert gw.pem --tls-key gw.key \\
          --client-ca city-ca.pem --cms-url https://cms.city.example/talq
    """
    import uvicorn

    from lanterna.talq.app import build
    from lanterna.talq.cms import Client, Cms
    from lanterna.talq.collect import Collector
    from lanterna.talq.gateway import Gateway

    host, port = host_port(listen)
    _check_files(tls_cert=tls_cert, tls_key=tls_key, client_ca=client_ca, cms_ca=cms_ca)
    if cms_address is not None:
        try:
            cms_address = str(uuid.UUID(cms_address))
        except ValueError:
            raise malformed(f"--cms-address {cms_address!r}: not a UUID") from None
    try:
        ssl.create_default_context(cafile=str(client_ca))
        s = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        s.load_cert_chain(str(tls_cert), str(tls_key))
    except (ssl.SSLError, OSError) as e:
        raise malformed(f"--tls-cert/--tls-key/--client-ca: {e}") from None
    store = c.store()
    broker = None
    try:
        broker = c.broker()
    except LanternaError as e:
        click.echo(
            f"warning: {e.message}: the gateway will show the fleet, not command it", err=True
        )
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"https://{shown}:{sock.getsockname()[1]}/"
    cms = None
    gw_box: list[Any] = []

    def gw_stores() -> Any:
        return gw_box[0].store() if gw_box else store

    if cms_url is not None:
        cms = Cms(gw_stores, Client(cms_url, tls_cert, tls_key, cms_ca), gateway_url or url)
    link: dict[str, Any] = {"cms": cms}

    def on_devices(nodes: list[str], request: str | None) -> None:
        if cms is None or not cms.addresses()[0]:
            return
        ctx = Ctx(c.target, c.broker_url)
        try:
            gw2 = Gateway(c.target, c.broker_url, prefix)
            gw2._local.ctx = ctx
            devs = [
                {**d, "functions": [f for f in d["functions"] if f["id"] == "lampActuator"]}
                for page in gw2._pages(nodes)
                for d in page
            ]
            path = "/devices" + (f"?talqOriginRequestId={request}" if request else "")
            st = ctx.store()
            with st.tx() as db:
                for i in range(0, len(devs), 200):
                    cms.queue(db, "PATCH", path, devs[i : i + 200])
        finally:
            ctx.close()

    gw = Gateway(c.target, c.broker_url, prefix, on_devices=on_devices)
    gw_box.append(gw)
    collector = Collector(
        gw,
        (lambda db, body: cms.queue(db, "POST", "/log-reports", body)) if cms is not None else None,
    )

    def known_cms() -> str | None:
        if cms is not None:
            return cms.addresses()[1]
        return cms_address

    app = build(gw, collector, known_cms)
    click.echo(
        f"lanterna talq-gateway: {url} (store {store.path}"
        + (f", broker {broker.url}" if broker else "")
        + (f", CMS {cms_url}" if cms_url else "")
        + ")"
    )
    stop = threading.Event()
    worker = threading.Thread(
        target=_work, args=(gw, collector, link, stop), daemon=True, name="talq-work"
    )
    worker.start()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        ssl_ca_certs=str(client_ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        worker.join(5)
        sock.close()
        gw.wait_jobs(15)


def _work(gw: Any, collector: Any, link: dict[str, Any], stop: threading.Event) -> None:
    """Once a second: the bootstrap (until it succeeds), the loggers, the outbox."""
    from lanterna.talq.cms import CmsError

    cms = link["cms"]
    ctx = Ctx(gw.target, gw.broker_url)
    gw._local.ctx = ctx  # this thread's store
    boot_wait, announced = 1.0, False
    next_boot = 0.0
    import time

    try:
        while not stop.is_set():
            if cms is not None and not announced and time.monotonic() >= next_boot:
                try:
                    was = cms.addresses()[0]
                    cms.bootstrap()
                    if not was:
                        devs = [d for page in gw._pages() for d in page]
                        cms.announce(gw.services(), gw.device_classes(), devs)
                    announced = True
                    click.echo(f"talq-gateway: registered with the CMS {cms.url}")
                except CmsError as e:
                    click.echo(f"warning: {e}; trying again in {boot_wait:.0f} s", err=True)
                    next_boot = time.monotonic() + boot_wait
                    boot_wait = min(60.0, boot_wait * 2)
            try:
                collector.tick()
                if cms is not None and announced:
                    cms.deliver(stop)
            except Exception:
                log.exception("talq-gateway: background work")
            stop.wait(1.0)
    finally:
        ctx.close()


COMMANDS = [talq_gateway]

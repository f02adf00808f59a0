"""`lanterna web`: the web console (lanterna.web, docs/web.md), served until Ctrl-C."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import click

from lanterna.cli.options import listen_option, pass_ctx, prefix_option
from lanterna.cli.params import host_port
from lanterna.context import Ctx, store_errors
from lanterna.errors import EXIT_FAILED, LanternaError, malformed


def check_tiles(url: str) -> str:
    """An XYZ tile URL template of the city's own tile server."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise malformed(f"--tiles {url!r}: an http(s) URL")
    missing = [k for k in ("{z}", "{x}", "{y}") if k not in url]
    if missing:
        raise malformed(f"--tiles {url!r}: the template lacks {', '.join(missing)}")
    return url


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        s.close()
        raise LanternaError(f"--listen {host}:{port}: {e.strerror}", EXIT_FAILED) from None
    s.listen(128)
    return s


@click.command("web")
@listen_option("127.0.0.1:8080")
@click.option(
    "--tiles",
    metavar="URL",
    help="The city's own XYZ tile server, e.g. https://tiles.city.example/{z}/{x}/{y}.png "
    "(default: no tiles, nothing fetched from anywhere).",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path),
              help="Serve HTTPS with this certificate (PEM); cookies are then Secure.")  # fmt: skip
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The certificate's private key (PEM).")  # fmt: skip
@prefix_option
@pass_ctx
@store_errors
def web(c: Ctx, listen: str, tiles: str | None, tls_cert: Path | None, tls_key: Path | None,
        prefix: str) -> None:  # fmt: skip
    """Serve the web console: the fleet on a map, a node's story, schedules, energy,
    faults, rollouts and the audit log, for operators who sign in (`lanterna user add`).

    \b
    Example:
      lanterna user add alice --role operator
      lanterna web --listen 127.0.0.1:8080
    """
    import uvicorn

    from lanterna.operators import Operators
    from lanterna.web.app import build

    host, port = host_port(listen)
    if (tls_cert is None) != (tls_key is None):
        raise malformed("--tls-cert and --tls-key go together")
    for f in (tls_cert, tls_key):
        if f is not None and not f.is_file():
            raise malformed(f"{f}: not found")
    if tiles is not None:
        check_tiles(tiles)
    if Operators(c.store()).count() == 0:
        raise LanternaError(
            "no operator can sign in: create one first with "
            "`lanterna user add NAME --role admin` (there is no default account)",
            EXIT_FAILED,
        )
    broker = None
    try:
        broker = c.broker()
    except LanternaError as e:
        click.echo(f"warning: {e.message}: the console will show the fleet, not command it",
                   err=True)  # fmt: skip
    app = build(c.target, c.broker_url, tiles, tls=tls_cert is not None, prefix=prefix)
    sock = bind(host, port)
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"lanterna web: {scheme}://{shown}:{sock.getsockname()[1]}/ (store {c.store().path}"
        + (f", broker {broker.url})" if broker else ")"),
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


COMMANDS = [web]

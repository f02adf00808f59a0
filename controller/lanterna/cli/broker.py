"""`lanterna broker config`: the broker's security configuration, from the store.

Thin over lanterna.broker.config (what is written and why: docs/security.md). It prints
where everything is and the controller's account name, never a password: node passwords
stay in credentials.json and the controller's in config.json, both 0600 beside the store;
a city platform's read-only account (--platform) keeps its password in credentials.json.
With --tls it records the CA's path as ``broker_ca`` in config.json: the controller's MQTT
clients verify the broker with it, and `lanterna provision` writes it onto every node.
Exit statuses as everywhere (docs/cli.md): 1 a file could not be written; 4 a name that
cannot be an account or topic level, a bad --host, or an unreadable credentials file;
6 the store.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lanterna.broker import config as bc
from lanterna.broker.credentials import CredentialsError
from lanterna.cli.options import json_option, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.cli.params import Duration
from lanterna.context import Ctx, store_errors, write_config
from lanterna.errors import EXIT_FAILED, LanternaError, malformed


def broker_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (bc.ConfigError, CredentialsError) as e:
            raise malformed(str(e)) from None
        except OSError as e:
            raise LanternaError(f"{e.filename or ''}: {e.strerror or e}", EXIT_FAILED) from None

    return wrapper


@click.group()
def broker() -> None:
    """The MQTT broker (mosquitto 2.0): its accounts, ACL and TLS (docs/security.md)."""


@broker.command("config")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for mosquitto.conf, passwd, acl (and the TLS files).",
)
@click.option("--tls", is_flag=True, help="A TLS listener with a generated CA; no plain one.")
@click.option(
    "--plain-too",
    is_flag=True,
    help="With --tls: also a plain listener on --port, bound to 127.0.0.1 only.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=1883, show_default=True)
@click.option("--tls-port", type=click.IntRange(1, 65535), default=8883, show_default=True)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Name or IP address in the server certificate (repeat). Default: localhost and 127.0.0.1.",
)
@click.option("--bind", help="Address of the network listener. Default: all interfaces.")
@click.option("--prefix", default=bc.N.PREFIX, show_default=True, help="The nodes' topic prefix.")
@click.option("--run-as", help="The user mosquitto drops to when started as root. Default: you.")
@click.option(
    "--rotate",
    is_flag=True,
    help="New passwords for every account, a new CA and server certificate: every node "
    "must then be given its new secrets.",
)
@click.option(
    "--outage",
    type=Duration(most=30 * 86400),
    default="1h",
    show_default=True,
    help="How long `lanterna serve` may be away with nothing dropped: sizes its queue.",
)
@click.option(
    "--fleet",
    type=click.IntRange(0),
    help="Nodes to size the queue for (a planned fleet). Default: the store's.",
)
@click.option(
    "--tele-s",
    type=click.IntRange(*bc.TELE_RANGE),
    default=bc.TELE_S,
    show_default=True,
    help="The nodes' telemetry period, s.",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="NAME",
    help="A read-only account for the city's data platform: status, state, tele and "
    "event of every node, nothing else (repeat for several). The config holds exactly "
    "the platforms given: one left out loses its account and its password.",
)
@json_option
@pass_ctx
@broker_errors
@store_errors
def broker_config(
    c: Ctx,
    out: Path,
    tls: bool,
    plain_too: bool,
    port: int,
    tls_port: int,
    hosts: tuple[str, ...],
    bind: str | None,
    prefix: str,
    run_as: str | None,
    rotate: bool,
    outage: int,
    fleet: int | None,
    tele_s: int,
    platforms: tuple[str, ...],
    as_json: bool,
) -> None:
    """Write a mosquitto configuration where each node of the store may publish only
    under its own topics and read only its own cmd and ota/data, the controller account
    reads and writes everything, and nobody else gets in. Passwords are generated once
    and kept (node passwords in credentials.json, the controller's in config.json, both
    0600 beside the store); nothing secret is printed. Re-running after adding nodes
    changes only what must change; send the running broker SIGHUP.

    \b
    Examples:
      lanterna broker config --out /etc/lanterna/broker
      lanterna broker config --out broker --tls --host mqtt.city.example --host 10.0.0.5
      lanterna broker config --out broker --fleet 70000 --outage 2h
      lanterna broker config --out broker --tls --platform cityplatform
      mosquitto -c broker/mosquitto.conf
    """
    if plain_too and not tls:
        raise click.UsageError(
            "--plain-too only goes with --tls (without it the listener is plain)"
        )
    nodes = [(n.id, n.site) for n in c.store().nodes()]
    opts = bc.Options(
        out=out,
        port=port,
        tls=tls,
        tls_port=tls_port,
        plain_too=plain_too,
        bind=bind,
        hosts=hosts or bc.Options.hosts,
        prefix=prefix,
        run_as=run_as,
        rotate=rotate,
        outage_s=outage,
        fleet=fleet,
        tele_s=tele_s,
        platforms=platforms,
    )
    r = bc.generate(opts, nodes, c.home)
    if tls:
        # The controller's own clients verify the broker with this CA (lanterna.context),
        # and `lanterna provision` gives it to every node it provisions.
        ca = str(r.files["ca"].resolve())
        was = c.config().get("broker_ca")
        if was != ca:
            write_config(c.home, {"broker_ca": ca})
            if was:
                click.echo(f"broker_ca: now {ca} (was {was})", err=True)
    for w in r.warnings:
        click.echo(f"warning: {w}", err=True)
    for p in r.removed_platforms:
        click.echo(
            f"platform account {p} removed with its password (not given with --platform)",
            err=True,
        )
    if not nodes:
        also = " and the platforms'" if r.platforms else ""
        click.echo(f"no nodes in the store: only the controller account{also}", err=True)
    if rotate:
        click.echo(
            "rotated: every node needs its new password"
            + (" and the new CA" if tls else "")
            + (", and every platform its new password" if r.platforms else "")
            + " before it can connect again",
            err=True,
        )
    if not run_as and os.geteuid() == 0:
        click.echo(
            "note: mosquitto started as root will stay root (`user root`); give --run-as "
            "a dedicated user and chown the directory to it",
            err=True,
        )
    if as_json:
        emit_json(r.as_json())
        return
    _print(r)


_WHAT = {
    "conf": "mosquitto -c this",
    "passwd": "accounts, hashed ($7$ PBKDF2-SHA512)",
    "acl": "who may publish and read what",
    "ca": "give to clients: they verify the broker with it",
    "ca_key": "signs server certificates: keep it offline if you can",
    "cert": "the broker's certificate",
    "key": "the broker's private key",
}


def _print(r: bc.Result) -> None:
    click.echo(
        f"broker config in {r.out}: {len(r.nodes)} node accounts, "
        f"{len(r.platforms)} platform accounts and the controller's; "
        f"changed: {', '.join(r.changed) or 'nothing'}"
    )
    rows = []
    for x in r.listeners:
        where = f"{x.bind or '*'}:{x.port}"
        rows.append(("mqtts (TLS)" if x.tls else "mqtt (plain)", where))
    click.echo(table(("listener", "address"), rows))
    click.echo()
    files = []
    for k, p in r.files.items():
        mode = f"{p.stat().st_mode & 0o777:04o}" if p.exists() else "-"
        files.append((str(p), mode, _WHAT[k]))
    click.echo(table(("file", "mode", "what"), files))
    click.echo()
    click.echo(
        f"controller account: {r.controller_user} (password: broker_password in "
        f"{r.credentials.parent / 'config.json'}, 0600)"
    )
    click.echo(f"node passwords: {r.credentials} (0600)")
    for name in r.platforms:
        click.echo(
            f"platform account {name} (read-only: {', '.join(r.platform_reads())}): password "
            f"platforms.{name}.mqtt_password in {r.credentials} (0600)"
        )
    if r.ca_fingerprint:
        click.echo(f"CA sha256: {r.ca_fingerprint}")
        click.echo(
            f"controller and provisioning verify the broker with {r.files['ca']} "
            f"(broker_ca in {r.credentials.parent / 'config.json'})"
        )
    if r.queue is not None:
        q = r.queue
        click.echo(
            f"ingest queue: {q.max_queued} messages ({q.nodes} nodes every {q.tele_s} s, "
            f"{q.survives_s // 60} min of serve away), about {q.memory_bytes / 2**20:.0f} MiB "
            f"of broker memory when full; beyond that about {int(3600 * q.per_s)} dropped "
            "per hour"
        )
    click.echo(f"start: mosquitto -c {r.files['conf']}; after a re-run: kill -HUP <its pid>")


COMMANDS = [broker]

"""`lanterna sim`: a virtual district against a real broker (thin over lanterna.sim.district)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lanterna.broker.url import parse as parse_broker_url
from lanterna.cli.options import location, pass_ctx
from lanterna.context import Ctx, store_errors
from lanterna.device.provision import node_ca
from lanterna.errors import malformed
from lanterna.fleet import schedules
from lanterna.ota.keys import fleet_public_modulus


@click.command("sim")
@click.option("--nodes", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option(
    "--protocol",
    "protocol_nodes",
    type=click.IntRange(1, 1_000_000),
    help="Protocol-level fleet of N nodes in this process instead of real firmware "
    "(docs/simulation.md).",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    help="With --protocol: MQTT connections carrying the nodes (default: one per 1000).",
)
@click.option(
    "--tele-period",
    type=click.IntRange(1, 86400),
    help="With --protocol: telemetry period in seconds (default: --tele-s; below 10 only "
    "for tests and benches, the node's config allows 10..86400).",
)
@click.option(
    "--mqtt-user",
    default="lanterna-sim",
    show_default=True,
    help="With --protocol: the fleet's MQTT account (password made once in the state dir).",
)
@click.option(
    "--reconnect-spread",
    type=click.FloatRange(0, 3600),
    default=0.0,
    help="With --protocol, a what-if for benches (not the node's policy): no reconnect "
    "window below S seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="With --protocol: JSON lines on stdout.")
@click.option(
    "--broker",
    "sim_broker",
    help="mqtt:// or mqtts://HOST:PORT for the nodes (default: the global one; mqtts: the "
    "nodes get the CA of $LANTERNA_BROKER_CA or broker_ca in config.json).",
)
@click.option(
    "--site",
    default="greenwich",
    show_default=True,
    help="Built in: greenwich, porta-romana, baixa.",
)
@location(note=" (a site not built in)")
@click.option(
    "--coap-base-port",
    type=click.IntRange(0, 65000),
    default=0,
    help="Node i serves CoAP on P+i (0: none).",
)
@click.option("--time-warp", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--board",
    "board_name",
    default="sim",
    show_default=True,
    help="Sim board: sim, the plain ESP32's 110K (scaled to this 64-bit port, "
    "docs/boards.md); sim-s3 an ESP32-S3 with a PSRAM heap.",
)
@click.option(
    "--tele-s",
    type=click.IntRange(10, 86400),
    default=60,
    show_default=True,
    help="Telemetry period.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sim-state"),
    show_default=True,
    help="One directory per node (its flash); credentials.json holds the secrets (0600).",
)
@click.option(
    "--schedule",
    "schedule_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Install this schedule on every node's flash before it boots (validated).",
)
@click.option(
    "--start", metavar="UTC", help="Node clocks start at this instant (2026-11-25T18:00)."
)
@click.option(
    "--init-only", is_flag=True, help="Write the nodes' state and credentials, start nothing."
)
@pass_ctx
def sim(
    ctx: Ctx,
    nodes: int,
    sim_broker: str | None,
    site: str,
    lat: float | None,
    lon: float | None,
    tz: str | None,
    coap_base_port: int,
    time_warp: int,
    board_name: str,
    tele_s: int,
    state_dir: Path,
    schedule_file: Path | None,
    start: str | None,
    init_only: bool,
    protocol_nodes: int | None,
    connections: int | None,
    tele_period: int | None,
    mqtt_user: str,
    reconnect_spread: float,
    as_json: bool,
) -> None:
    """A virtual district: N lamp posts (real firmware, sim board, one MicroPython process
    each) against a real broker; SIGINT or SIGTERM stops them all.

    \b
    Example:
      lanterna sim --nodes 10 --broker mqtt://127.0.0.1:1883 --site greenwich --init-only
      (load state-dir/credentials.json into the broker's password file), then
      lanterna sim --nodes 10 --broker mqtt://127.0.0.1:1883 --site greenwich
      lanterna sim --protocol 10000 --connections 10 --tele-period 60 --json
    """
    if protocol_nodes is not None:
        _protocol(
            ctx,
            protocol_nodes,
            connections,
            tele_period or tele_s,
            sim_broker,
            site,
            lat,
            lon,
            tz,
            state_dir,
            mqtt_user,
            init_only,
            as_json,
            reconnect_spread,
        )
        return
    if connections is not None or tele_period is not None or as_json:
        raise malformed("--connections, --tele-period and --json go with --protocol")
    from lanterna.fleet.energy import parse_when
    from lanterna.sim.district import District, prepare, register, share_credentials

    start_s = None
    if start is not None:
        try:
            start_s = int(parse_when(start))
        except ValueError as e:
            raise malformed(f"--start: {e}") from None
    sched_text = None
    if schedule_file is not None:
        obj, _ = schedules.load(schedule_file)
        sched_text = json.dumps(obj)
    broker = sim_broker or ctx.broker().url
    ota_key = fleet_public_modulus(ctx.home)
    u = parse_broker_url(broker, "--broker")
    ca = node_ca(u, ctx.broker_ca()) if u.tls else None
    prepared = prepare(
        state_dir, nodes, site, broker, lat, lon, tz, coap_base_port, tele_s, ota_key, ca
    )
    # The controller's store learns the nodes (site, board, location, key) so that the
    # CLI commands a virtual district exactly as a real one.
    store_errors(register)(ctx.store(), state_dir, prepared, site, lat, lon, tz, board_name)
    # ... and their MQTT passwords, so that `lanterna broker config` gives them accounts.
    share_credentials(ctx.home, state_dir, prepared)
    click.echo(
        f"{len(prepared)} nodes of {site} in {state_dir} (secrets: credentials.json), "
        f"registered in {ctx.store().path}"
    )
    if sched_text is not None:
        for n in prepared:
            (n.dir / "schedule.json").write_text(sched_text)
    if init_only:
        return
    district = District(prepared, time_warp, board_name)
    if start_s is not None:
        district.extra_args = ["--start", str(start_s)]
    district.start()
    click.echo(f"started {len(prepared)} nodes; logs in {state_dir}/<node>/node.log; Ctrl-C stops")
    try:
        district.wait()
    finally:
        district.stop()
    click.echo("stopped")


def _protocol(
    ctx: Ctx,
    n: int,
    connections: int | None,
    tele_s: int,
    sim_broker: str | None,
    site: str,
    lat: float | None,
    lon: float | None,
    tz: str | None,
    state_dir: Path,
    user: str,
    init_only: bool,
    as_json: bool,
    spread_s: float = 0.0,
) -> None:
    """`lanterna sim --protocol N`: lanterna.sim.protocol, one asyncio loop; the line
    `ready ...` (or the JSON event "ready") once every node's online is acknowledged,
    a summary at the end (SIGINT or SIGTERM)."""
    import asyncio
    import logging
    import signal
    import sys

    from lamp import log as fwlog
    from lanterna.fleet.registry import SiteError, check_name, resolve_site
    from lanterna.sim import protocol as P

    check_name("--site", site)
    if connections is not None and connections > n:
        raise malformed(f"--connections {connections}: more than the {n} nodes")
    try:
        lat, lon, tz = resolve_site(site, lat, lon, tz)
    except SiteError as e:
        raise malformed(str(e)) from None
    u = parse_broker_url(sim_broker or ctx.broker().url, "--broker")
    if u.tls:
        raise malformed(f"--broker {u.url}: the protocol fleet speaks plain MQTT only")
    st = P.prepare(state_dir, n, site, user)
    store = ctx.store()
    with click.progressbar(length=n, label="registering", file=sys.stderr, show_pos=True) as bar:
        written = store_errors(P.register)(store, st["nodes"], site, lat, lon, tz, bar.update)

    def emit(event: str, body: dict) -> None:
        if as_json:
            click.echo(json.dumps({"event": event, **body}))
        else:
            click.echo(f"{event}: " + ", ".join(f"{k} {v}" for k, v in body.items()))
        sys.stdout.flush()

    emit(
        "registered",
        {
            "nodes": n,
            "written": written,
            "store": str(store.path),
            "state": str(P.state_file(state_dir, site)),
            "mqtt_user": user,
        },
    )
    if init_only:
        return
    fwlog.level = fwlog.ERROR + 1  # the nodes' command log would fill stdout
    # asyncio warns once per write into a lost socket: thousands when a broker restarts
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    nodes = P.make_nodes(st["nodes"], site, state_dir, tele_s)

    async def main() -> dict:
        fleet = P.Fleet(nodes, u.host, u.port, user, st["password"], connections, spread_s=spread_s)
        fleet.flash_path = P.flash_file(state_dir)
        fleet.on_ready = lambda s: emit("ready", s)
        fleet.on_online = lambda s: emit("online", s)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, fleet.stop)
        await fleet.run()
        return {**fleet.summary(), "attempts_by_100ms": fleet.attempts_by_100ms}

    try:
        summary = asyncio.run(main())
    except ValueError as e:
        raise malformed(str(e)) from None
    emit("stopped", summary)  # with attempts_by_100ms: the connection attempts in time


@click.command("sim-input")
@click.argument("node")
@click.argument("values", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sim-state"),
    show_default=True,
    help="The district's state directory (as given to `lanterna sim`).",
)
def sim_input(node: str, values: tuple[str, ...], state_dir: Path) -> None:
    """Set what a running virtual node's pole senses: a failed lamp, lost mains, a welded
    relay, a day burner, the ambient light, the charge point's pilot (taken within a
    second; the node's fault monitor then reports what a pole would).

    \b
    Example:
      lanterna sim-input greenwich-001 lamp_failed=true
      lanterna sim-input greenwich-001 mains=false relay_welded=null lux=12.5
    """
    import json

    from lanterna.sim.stop import INPUTS, set_inputs

    if not (state_dir / node).is_dir():
        raise malformed(f"{state_dir / node}: no virtual node {node!r} in {state_dir}")
    parsed: dict[str, object] = {}
    for v in values:
        name, sep, text = v.partition("=")
        if not sep or name not in INPUTS:
            raise malformed(f"{v!r}: expected NAME=VALUE, NAME one of {', '.join(INPUTS)}")
        try:
            parsed[name] = json.loads(text)
        except ValueError:
            raise malformed(f"{v!r}: the value is JSON (true, false, null, a number)") from None
    p = set_inputs(state_dir / f"{node}.stop", parsed)
    click.echo(f"{node}: {', '.join(f'{k}={json.dumps(x)}' for k, x in parsed.items())} ({p})")


COMMANDS = [sim, sim_input]

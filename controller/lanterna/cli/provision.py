"""`lanterna provision`: a flashed board becomes a lamp post of the fleet (thin over
lanterna.device.provision; docs/provisioning.md). Exit statuses as everywhere (docs/cli.md):
1 the device (an unreachable port, a failed copy or read-back), 4 malformed input (a
board, a node id, a site without coordinates, WiFi options that do not fit the board)."""

from __future__ import annotations

from pathlib import Path

import click

from lanterna.boards import load_board
from lanterna.broker.credentials import Credentials
from lanterna.broker.url import parse as parse_broker_url
from lanterna.cli.options import json_option, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.context import Ctx, store_errors
from lanterna.device import probe
from lanterna.device import provision as pv
from lanterna.errors import EXIT_FAILED, LanternaError, malformed
from lanterna.fleet.registry import SiteError, resolve_site
from lanterna.ota.keys import fleet_public_modulus
from lanterna.store import UnknownNode
from lanterna.tzinfo import posix_tz


@click.command("provision")
@click.option(
    "--port",
    required=True,
    help="Anything mpremote opens: /dev/ttyUSB0, socket://HOST:PORT, rfc2217://HOST:PORT.",
)
@click.option("--board", "board_name", required=True, help="Board name or file.")
@click.option("--node", required=True, help="The node id, e.g. greenwich-017.")
@click.option("--site", required=True)
@click.option("--lat", type=click.FloatRange(-90, 90), help="Default: the site's.")
@click.option("--lon", type=click.FloatRange(-180, 180), help="Default: the site's.")
@click.option("--tz", help="IANA zone or POSIX TZ. Default: the site's.")
@click.option("--wifi-ssid")
@click.option("--wifi-password")
@click.option("--lan", is_flag=True, help="Wired Ethernet instead of WiFi.")
@click.option(
    "--broker",
    "broker_url",
    help="mqtt://HOST:PORT or mqtts://HOST:PORT. Default: the controller's.",
)
@click.option(
    "--broker-ca",
    type=click.Path(path_type=Path, dir_okay=False),
    help="For mqtts://: the broker's CA (PEM), written to the node as ca.der. "
    "Default: $LANTERNA_BROKER_CA, else broker_ca in config.json (set by "
    "`lanterna broker config --tls`).",
)
@click.option("--tele-s", type=click.IntRange(10, 86400), default=60, show_default=True)
@click.option("--no-reset", is_flag=True, help="Do not restart the board afterwards.")
@click.option("--dry-run", is_flag=True, help="Show what would be written; touch nothing.")
@json_option
@pass_ctx
@store_errors
def provision(
    c: Ctx,
    port: str,
    board_name: str,
    node: str,
    site: str,
    lat: float | None,
    lon: float | None,
    tz: str | None,
    wifi_ssid: str | None,
    wifi_password: str | None,
    lan: bool,
    broker_url: str | None,
    broker_ca: Path | None,
    tele_s: int,
    no_reset: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Write the firmware, the board file and the node's config (its own MQTT password
    and command key, the fleet's OTA key, location, zone) onto the device through
    mpremote, read every file back, and register the node. Running it again writes only
    what differs: nothing, when the device is as it should be.

    \b
    Example:
      lanterna provision --port /dev/ttyUSB0 --board esp32-devkitc --node greenwich-017 \\
          --site greenwich --lat 51.4826 --lon 0.0077 --wifi-ssid pole-net --wifi-password ...
    """
    board = load_board(board_name)
    if not pv.NODE_ID.match(node):
        raise malformed(f"--node: {node!r}: lower-case letters, digits and '-', up to 63")
    network = None
    # A pole needs its network named; a sim board may have one (lamp.hal.simnet's model),
    # or none (the host's network is simply there).
    if board["chip"] != "sim" or lan or wifi_ssid:
        if lan == bool(wifi_ssid):
            raise malformed(
                f"board {board['name']}: give --wifi-ssid and --wifi-password, or --lan"
            )
        if lan and board["network"] != "lan":
            raise malformed(f"--lan: board {board['name']} has no Ethernet ({board['network']})")
        if wifi_ssid and not wifi_password:
            raise malformed("--wifi-ssid needs --wifi-password (no open networks on a pole)")
        network = {"lan": True} if lan else {"wlan": {"ssid": wifi_ssid, "password": wifi_password}}
    store = c.store()
    known = store.site(site)
    if known is not None:
        lat = known["lat"] if lat is None else lat
        lon = known["lon"] if lon is None else lon
        tz = known["tz"] if tz is None else tz
    try:
        lat, lon, tz = resolve_site(site, lat, lon, tz)
    except SiteError as e:
        raise malformed(str(e)) from None
    # The node's broker: --broker, else the controller's; mqtts:// gives the node TLS.
    u = parse_broker_url(broker_url or c.broker().url, "--broker")
    ca = pv.node_ca(u, broker_ca or c.broker_ca()) if u.tls else None
    forms = _slot_forms(
        port, board, dry_run
    )  # before any secret is made: a refusal changes nothing
    tz_posix = posix_tz(tz)
    try:
        key = store.node(node).key
    except UnknownNode:  # a new node gets a new key; any other store error stops here
        key = pv.new_key()
    with Credentials(c.home) as creds:
        # A dry run makes no secret: a node without a password yet shows a stand-in.
        password = (creds.get(node) or "(new)") if dry_run else creds.ensure(node)
    mqtt = pv.mqtt_config(u, node, password)
    ota_key = fleet_public_modulus(c.home)
    cfg = pv.node_config(
        node, site, lat, lon, tz_posix, mqtt, key.hex(), tele_s, 0, ota_key, network
    )
    plan = pv.Plan(
        port,
        node,
        site,
        board["name"],
        pv.device_files(board_name, cfg, ca, forms),
        key,
        lat,
        lon,
        tz,
    )
    if dry_run:
        files = plan.describe()
        if as_json:
            emit_json({"node": node, "site": site, "port": port, "files": files, "dry_run": True})
            return
        rows = [(f["path"], f["bytes"], f["sha256"][:16]) for f in files]
        click.echo(table(("file on the device", "bytes", "sha256"), rows, right=(1,)))
        click.echo(
            f"would copy what differs to {port} with mpremote, read it all back, "
            f"and register {node} ({board['name']}) in site {site}"
        )
        return
    try:
        written = pv.apply(plan, lambda s: click.echo(s, err=True), reset=not no_reset)
    except pv.ProvisionError as e:
        raise LanternaError(str(e), EXIT_FAILED) from None
    store.put_site(site, lat, lon, tz)
    store.put_node(node, site, board["name"], key, lat=lat, lon=lon)
    out = {
        "node": node,
        "port": port,
        "written": written,
        "unchanged": len(plan.files) - len(written) - len(plan.skipped),
        "skipped": plan.skipped,
    }
    if as_json:
        emit_json(out)
    elif written:
        n = len(written)
        click.echo(f"provisioned {node} on {port}: {n} file(s) written and read back")
        click.echo(f"{node} registered in site {site}")
    else:
        click.echo(f"{node} on {port}: the device already holds every file; nothing changed")


def _slot_forms(port: str, board: dict, dry_run: bool) -> tuple[str, ...]:
    # The slot form the board's firmware runs (docs/provisioning.md, "Slot form"): asked
    # on the board (lanterna.device.probe); a dry run touches no port and shows what the
    # board file asks for. A MicroPython too old for the firmware: one line, exit 4.
    if dry_run:
        return ("romfs", "files") if board["image"]["romfs"] else ("files",)
    try:
        found = probe.probe(port)
        probe.check(found, board)
    except probe.ProbeError as e:
        raise LanternaError(str(e), e.status) from None
    if w := probe.warning(found, board):
        click.echo(w, err=True)
    return found.forms()


COMMANDS = [provision]

"""`lanterna site add|list`: where nodes stand (latitude, longitude, IANA time zone).

Thin over the store and lanterna.fleet.registry (its rules for names, ranges, zones).
"""

from __future__ import annotations

import click

from lanterna.cli.options import json_option, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.context import Ctx, store_errors
from lanterna.fleet.registry import SiteError, check_name, check_range, check_tz, resolve_site


@click.group()
def site() -> None:
    """Sites: where nodes stand (latitude, longitude, IANA time zone)."""


@site.command("add")
@click.argument("name")
@click.option("--lat", type=float, help="Latitude, degrees north.")
@click.option("--lon", type=float, help="Longitude, degrees east.")
@click.option("--tz", help="IANA time zone name (Europe/Rome).")
@json_option
@pass_ctx
@store_errors
def site_add(
    c: Ctx, name: str, lat: float | None, lon: float | None, tz: str | None, as_json: bool
) -> None:
    """Add a site, or change one. A built-in site (greenwich, porta-romana, baixa) takes
    its own position and zone for what is not given.

    \b
    Examples:
      lanterna site add greenwich
      lanterna site add bordeaux --lat 44.8378 --lon -0.5792 --tz Europe/Paris
    """
    check_name("site", name)
    try:
        lat, lon, tz = resolve_site(name, lat, lon, tz)
    except SiteError as e:
        raise click.UsageError(str(e)) from None
    check_range("--lat", lat, -90, 90)
    check_range("--lon", lon, -180, 180)
    check_tz(tz)
    store = c.store()
    new = store.site(name) is None
    store.put_site(name, lat, lon, tz)
    if as_json:
        emit_json(store.site(name))
        return
    click.echo(f"{'added' if new else 'updated'} site {name}: {lat:g}, {lon:g}, {tz}")


@site.command("list")
@json_option
@pass_ctx
@store_errors
def site_list(c: Ctx, as_json: bool) -> None:
    """The sites, with how many nodes each has."""
    store = c.store()
    sites = [dict(s, nodes=len(store.nodes(site=s["name"]))) for s in store.sites()]
    if as_json:
        emit_json(sites)
        return
    rows = [(s["name"], f"{s['lat']:g}", f"{s['lon']:g}", s["tz"], s["nodes"]) for s in sites]
    click.echo(table(("site", "lat", "lon", "tz", "nodes"), rows, right=(1, 2, 4)))


COMMANDS = [site]

"""`lanterna export`: open data for the city's portal (lanterna.bridge.export): the fleet
as GeoJSON, telemetry or energy as CSV, streamed to stdout or --out. Exit statuses:
4 a bad option value, 3 an unknown site, 6 the store."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import click

from lanterna.cli.options import pass_ctx
from lanterna.cli.params import when
from lanterna.context import Ctx, store_errors
from lanterna.errors import EXIT_FAILED, LanternaError, malformed
from lanterna.files import landing


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["geojson", "csv"]), required=True)
@click.option(
    "--data",
    type=click.Choice(["telemetry", "energy"]),
    default="telemetry",
    show_default=True,
    help="What a CSV holds: every telemetry message, or the energy report per node.",
)
@click.option("--site", help="The nodes of this site only.")
@click.option(
    "--since", metavar="WHEN", help="CSV: from (ISO date or date-time; default 24 h ago)."
)
@click.option("--until", metavar="WHEN", help="CSV: until, excluded (default now).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (atomically) instead of stdout.")  # fmt: skip
@pass_ctx
@store_errors
def export(
    ctx: Ctx,
    fmt: str,
    data: str,
    site: str | None,
    since: str | None,
    until: str | None,
    out: Path | None,
) -> None:
    """The fleet as GeoJSON (a Point feature per node, with its Smart Data Models
    Streetlight properties), or telemetry or energy as CSV, for the city's open-data
    portal.

    \b
    Examples:
      lanterna export --format geojson --site greenwich > streetlights.geojson
      lanterna export --format csv --since 2026-11-01 --until 2026-12-01 --out nov.csv
      lanterna export --format csv --data energy --since 2026-11-01 --until 2026-12-01
    """
    from lanterna.bridge import export as ex

    now = time.time()
    t1 = when("--until", until) if until else now
    t0 = when("--since", since) if since else t1 - 86400
    if fmt == "geojson" and (since or until or data != "telemetry"):
        raise malformed("--since, --until and --data are for --format csv")
    if t1 <= t0:
        raise malformed("--until must be after --since")
    store = ctx.store()
    if site is not None and store.site(site) is None:
        from lanterna.errors import Unknown

        raise Unknown(f"unknown site {site!r}")
    if out is None:
        _write(ex, store, fmt, data, site, t0, t1, sys.stdout)
        return
    try:
        with landing(out, 0o644) as raw:
            text = io.TextIOWrapper(raw, "utf-8", newline="")
            n = _write(ex, store, fmt, data, site, t0, t1, text)
            text.flush()
            text.detach()  # landing syncs and closes the file itself
    except OSError as e:
        raise LanternaError(f"--out {out}: {e.strerror or e}", EXIT_FAILED) from None
    click.echo(f"wrote {n} {'features' if fmt == 'geojson' else 'rows'} to {out}", err=True)


def _write(ex, store, fmt, data, site, t0, t1, stream) -> int:
    if fmt == "geojson":
        return int(ex.geojson(store, stream, site))
    if data == "energy":
        return int(ex.energy_csv(store, stream, t0, t1, site))
    return int(ex.telemetry_csv(store, stream, t0, t1, site))


COMMANDS = [export]

"""`lanterna schedule validate|preview|push`: dimming schedules (docs/schedules.md).

Validation and the preview run the node's own schedule code (lanterna.fleet.schedules
imports lamp.schedule), so what is shown is what a node will do; a malformed file is
exit 4 with the path of what is wrong. `push` signs and sends it as lanterna.cli.commands
sends every command.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click

from lanterna.cli.commands import finish, send, targets
from lanterna.cli.options import json_option, location, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.context import Ctx, store_errors
from lanterna.fleet import schedules


@click.group()
def schedule() -> None:
    """Dimming schedules (format: docs/schedules.md)."""


@schedule.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
def schedule_validate(file: Path) -> None:
    """Check a schedule file; exit 4 with the offending path if it is invalid.

    \b
    Example:
      lanterna schedule validate greenwich-winter.json
    """
    _, sched = schedules.load(file)
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
@location(required=True)
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
    _, sched = schedules.load(file)
    p = schedules.preview(sched, night.date(), lat, lon, tz, rated_w)
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


@schedule.command("push")
@click.argument("file", type=click.Path(path_type=Path))
@targets
@pass_ctx
def schedule_push(ctx: Ctx, file: Path, **kw: Any) -> None:
    """Validate a schedule file and replace the schedule of the selected nodes.

    \b
    Example:
      lanterna schedule push docs/examples/schedule-greenwich.json --site greenwich
    """
    obj, sched = schedules.load(file)
    body = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(body.encode()).hexdigest()

    @store_errors
    def go() -> list:
        # The store keeps every version pushed, and which node took which.
        sid = ctx.store().add_schedule(str(obj.get("id") or file.stem), body, digest)
        outs = send(ctx, "schedule", {"schedule": obj}, kw)
        for x in outs:
            if x.status == "ok" and x.command:
                ctx.store().schedule_pushed(sid, x.node, x.command)
        return outs

    del sched
    finish(ctx, go())


COMMANDS = [schedule]

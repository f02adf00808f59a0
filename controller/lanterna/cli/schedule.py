"""`lanterna schedule validate|preview|push`: dimming schedules (docs/schedules.md).

Validation and the preview (one night, or every night of a year with ``--year``) run the
node's own schedule code (lanterna.fleet.schedules imports lamp.schedule), so what is
shown is what a node will do; a malformed file (the schedule or its ``--against``) is
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
from lanterna.fleet import energy as er
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
    type=click.DateTime(["%Y-%m-%d"]),
    help="The night starting on this local date.",
)
@click.option(
    "--year",
    type=click.IntRange(1971, 2100),
    help="Instead of one night: every night of this year, in kWh, EUR and kg CO2.",
)
@click.option(
    "--against",
    type=click.Path(path_type=Path),
    help="With --year: another schedule file, side by side.",
)
@location(required=True)
@click.option(
    "--rated-w",
    type=click.IntRange(1, 1000),
    help="Lamp input power at 100 % (W); default: the node's energy.rated_power_w default.",
)
@click.option(
    "--price-per-kwh",
    type=click.FloatRange(min=0),
    help=f"With --year: tariff, {er.CURRENCY} per kWh (default {er.PRICE_PER_KWH}, "
    "as `lanterna energy report`).",
)
@click.option(
    "--co2-per-kwh",
    type=click.FloatRange(min=0),
    help=f"With --year: grid emission factor, kg CO2 per kWh (default {er.CO2_PER_KWH}).",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the level over the night (with --year: kWh per month) into this PNG.",
)
@json_option
def schedule_preview(
    file: Path,
    night,
    year: int | None,
    against: Path | None,
    lat: float,
    lon: float,
    tz: str,
    rated_w: int | None,
    price_per_kwh: float | None,
    co2_per_kwh: float | None,
    png: Path | None,
    as_json: bool,
) -> None:
    """Show what a node at LAT/LON in TZ will do during one night, with the energy used;
    with --year, every night of a year against full power from sunset to sunrise.

    \b
    Examples:
      lanterna schedule preview winter.json --date 2026-12-21 \\
          --lat 51.4826 --lon 0.0077 --tz Europe/London --json
      lanterna schedule preview winter.json --year 2027 --against night-saver.json \\
          --lat 51.4826 --lon 0.0077 --tz Europe/London --png 2027.png
    """
    if (night is None) == (year is None):
        raise click.UsageError("give one of --date (a night) or --year (every night of it)")
    if year is None:
        year_only = {"--against": against, "--price-per-kwh": price_per_kwh}
        year_only["--co2-per-kwh"] = co2_per_kwh
        for option, value in year_only.items():
            if value is not None:
                raise click.UsageError(f"{option} goes with --year, not --date")
    _, sched = schedules.load(file)
    if year is not None:
        other = None if against is None else schedules.load(against)[1]
        y = schedules.year(
            sched, year, lat, lon, tz, rated_w, price_per_kwh, co2_per_kwh, against=other
        )
        if png is not None:
            schedules.plot_year(y, png)
        if as_json:
            emit_json(y.as_json())
        else:
            _year_table(y)
        if png is not None:
            click.echo(f"chart: {png}", err=True)
        return
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


def _pct(used: float, baseline: float) -> str:
    return f"{100 * (baseline - used) / baseline:.1f}" if baseline else "-"


def _savings(name: str, t: dict[str, Any]) -> str:
    pct = "-" if t["saving_pct"] is None else f"{t['saving_pct']} %"
    return (
        f"{name}: {t['saved_kwh']:.3f} kWh, {t['saved_eur']:.2f} {er.CURRENCY}, "
        f"{t['saved_co2_kg']:.2f} kg CO2 ({pct} of full power)"
    )


def _year_table(y: schedules.YearPreview) -> None:
    other = y.against_id
    click.echo(
        f"schedule {y.schedule_id}, {y.year}: {len(y.nights)} nights, {y.rated_w} W lamp, "
        f"{y.price_eur_kwh} {er.CURRENCY}/kWh, {y.co2_kg_kwh} kg CO2/kWh; "
        f"baseline: {schedules.BASELINE}"
    )
    headers = ["month", "kWh"] + ([f"{other} kWh"] if other else []) + ["baseline kWh"]
    headers += ["saved kWh", "saved %"]
    months = y.months()
    total = {"month": "total", "kwh": y.kwh, "baseline_kwh": y.baseline_kwh}
    if other:
        total["against_kwh"] = y.against_kwh
    rows = []
    for m in months + [total]:
        row = [m["month"], f"{m['kwh']:.3f}"]
        row += [f"{m['against_kwh']:.3f}"] if other else []
        row += [f"{m['baseline_kwh']:.3f}", f"{m['baseline_kwh'] - m['kwh']:.3f}"]
        rows.append(row + [_pct(m["kwh"], m["baseline_kwh"])])
    click.echo(table(headers, rows, right=range(1, len(headers))))
    if other:
        click.echo(_savings(f"{other} saves", y.totals(y.against_kwh)))
    click.echo(_savings(f"{y.schedule_id} saves", y.totals()))


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

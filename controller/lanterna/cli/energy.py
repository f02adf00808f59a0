"""`lanterna energy report`: kWh used against the full-power baseline, by site and group.

The figures are lanterna.fleet.energy's; this module parses, renders a table or
``--json``, and draws the chart when asked. docs/energy-report.md says what they mean.
"""

from __future__ import annotations

from pathlib import Path

import click

from lanterna.cli.options import json_option, pass_ctx
from lanterna.cli.output import emit_json, table
from lanterna.cli.params import when
from lanterna.context import Ctx, store_errors
from lanterna.errors import malformed
from lanterna.fleet import energy as er

COVERAGE_NOTE = 0.95  # below this share of the interval a node is named on stderr


@click.group()
def energy() -> None:
    """Energy the lamps used and saved against full power (docs/energy-report.md)."""


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


@energy.command("report")
@click.option("--site", help="The nodes of this site.")
@click.option("--group", help="The nodes of this group.")
@click.option("--since", required=True, metavar="WHEN", help="Start: ISO date or date-time.")
@click.option("--until", required=True, metavar="WHEN", help="End (excluded): the same.")
@click.option(
    "--price-per-kwh",
    type=click.FloatRange(min=0),
    default=er.PRICE_PER_KWH,
    show_default=True,
    help=f"Tariff, {er.CURRENCY} per kWh.",
)
@click.option(
    "--co2-per-kwh",
    type=click.FloatRange(min=0),
    default=er.CO2_PER_KWH,
    show_default=True,
    help="Grid emission factor, kg CO2 per kWh.",
)
@click.option(
    "--max-gap",
    type=click.FloatRange(min=1),
    default=er.MAX_GAP_S / 60,
    show_default=True,
    help="Minutes between two samples beyond which a node counts as not reporting.",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw used vs baseline kWh per site and group into this PNG.",
)
@json_option
@pass_ctx
@store_errors
def energy_report(
    ctx: Ctx,
    site: str | None,
    group: str | None,
    since: str,
    until: str,
    price_per_kwh: float,
    co2_per_kwh: float,
    max_gap: float,
    png: Path | None,
    as_json: bool,
) -> None:
    """Energy used by the lamps in [SINCE, UNTIL) against full power from sunset to
    sunrise, per site and per group, with the savings in kWh, EUR and kg CO2.

    WHEN is an ISO date (its midnight) or date-time; without Z or an offset it is UTC.
    Coverage is the share of the interval the nodes were reporting: read the savings
    with it (a node that sent nothing shows 0 % coverage and its whole baseline saved).

    \b
    Examples:
      lanterna energy report --site greenwich --since 2026-11-01 --until 2026-12-01
      lanterna energy report --group high-street --since 2026-11-24T12:00 \\
          --until 2026-11-25T12:00 --price-per-kwh 0.31 --png night.png --json
    """
    if site is not None and group is not None:
        raise click.UsageError("give --site or --group, not both")
    t0, t1 = when("--since", since), when("--until", until)
    if t1 <= t0:
        raise malformed(f"--until {until} is not after --since {since}")
    r = er.report(
        ctx.store(), t0, t1, site, group, price_per_kwh, co2_per_kwh, max_gap_s=max_gap * 60
    )
    if png is not None:
        er.plot(r, png)
    if as_json:
        emit_json(r.as_json())
    else:
        click.echo(f"{er.iso(t0)} to {er.iso(t1)}; baseline: {er.BASELINE}")
        rows = []
        for kind, tallies in (("site", r.sites), ("group", r.groups), ("total", [r.total])):
            for t in tallies:
                rows.append(
                    (
                        kind,
                        "" if kind == "total" else t.name,
                        t.nodes,
                        f"{t.kwh:.3f}",
                        f"{t.baseline_kwh:.3f}",
                        f"{t.saved_kwh:.3f}",
                        _pct(t.saved_pct),
                        f"{t.saved_kwh * price_per_kwh:.2f}",
                        f"{t.saved_kwh * co2_per_kwh:.2f}",
                        _pct(100 * t.coverage if t.nodes else None),
                    )
                )
        headers = (
            "",
            "name",
            "nodes",
            "used kWh",
            "baseline kWh",
            "saved kWh",
            "saved %",
            f"saved {er.CURRENCY}",
            "saved kg CO2",
            "coverage %",
        )
        click.echo(table(headers, rows, right=range(2, 10)))
    # A node's first telemetry comes a period after it starts: a few percent short of the
    # interval is normal, more means hours without data.
    short = [n for n in r.nodes if n.coverage < COVERAGE_NOTE]
    if short:
        listed = ", ".join(f"{n.name} {100 * n.coverage:.1f} %" for n in short[:10])
        more = f" and {len(short) - 10} more" if len(short) > 10 else ""
        click.echo(
            f"note: {len(short)} of {len(r.nodes)} nodes reported for less than "
            f"{100 * COVERAGE_NOTE:.0f} % of the interval (coverage: {listed}{more}); "
            "their savings include hours without data",
            err=True,
        )
    if png is not None:
        click.echo(f"chart: {png}", err=True)


COMMANDS = [energy]

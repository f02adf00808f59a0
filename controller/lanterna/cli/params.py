"""Click parameter types for the values the CLI reads in more than one place.

A value that does not parse is malformed input (exit 4, docs/cli.md), one line naming the
option, not a usage error: the parsing is the library's (durations in
lanterna.fleet.commander, shares in lanterna.ota.rollout), so the CLI and the library
agree on what a value means.
"""

from __future__ import annotations

from typing import Any

import click

from lamp.cmd.args import ARGS
from lanterna.errors import EXIT_MALFORMED


class MalformedValue(click.ClickException):
    exit_code = EXIT_MALFORMED


def _name(param: click.Parameter | None, fallback: str) -> str:
    if param is None:
        return fallback
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return (param.name or fallback).lower()


class Duration(click.ParamType):
    """'90s', '30m', '2h', '1h30m', '1d' or seconds -> seconds; `most` bounds it."""

    name = "duration"

    def __init__(self, most: int | None = None) -> None:
        self.most = most

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        from lanterna.fleet.commander import parse_duration

        if isinstance(value, int):
            return value
        what = _name(param, "duration")
        try:
            s = parse_duration(str(value))
        except ValueError as e:
            raise MalformedValue(f"{what}: {e}") from None
        if self.most is not None and s > self.most:
            days = self.most // 86400
            raise MalformedValue(f"{what}: at most {days} days")
        return s


class Level(click.ParamType):
    """A lamp level 0-100 (%), or None for `auto` (back to the schedule)."""

    name = "level"
    AUTO = ("auto", "release", "schedule")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if value is None or isinstance(value, int):
            return value
        if str(value).lower() in self.AUTO:
            return None
        what = _name(param, "level")
        try:
            lv = int(value)
        except ValueError:
            raise MalformedValue(f"{what}: {value!r} is not 0-100 or auto") from None
        lo, hi = ARGS["dim"]["level"][1:]  # the node's range (lamp.cmd.args)
        if not lo <= lv <= hi:
            raise MalformedValue(f"{what}: {lv} is outside {lo}-{hi}")
        return lv


class Share(click.ParamType):
    """A percentage ('10%') as a fraction; with `count_ok`, a whole number of nodes too
    (kept as its text, as the rollout plan stores it)."""

    name = "share"

    def __init__(self, zero: bool = False, count_ok: bool = False) -> None:
        self.zero, self.count_ok = zero, count_ok

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        from lanterna.ota.rollout import RolloutError, parse_share

        if not isinstance(value, str):
            return value
        if self.count_ok and value.isdigit() and int(value) > 0:
            return value
        try:
            share = parse_share(value, _name(param, "share"), zero=self.zero)
        except RolloutError as e:
            raise MalformedValue(str(e)) from None
        return value if self.count_ok else share


def when(option: str, text: str) -> float:
    """An option's ISO date or date-time (lanterna.fleet.energy.parse_when) -> epoch s; a
    bad one is malformed input (exit 4), named by its option."""
    from lanterna.errors import malformed
    from lanterna.fleet.energy import parse_when

    try:
        return parse_when(text)
    except ValueError as e:
        raise malformed(f"{option}: {e}") from None


def host_port(value: str) -> tuple[str, int]:
    """--listen's HOST:PORT (port 0: any free port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)

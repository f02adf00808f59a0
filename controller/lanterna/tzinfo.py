"""Time zones for the controller, in the form the node understands.

Nodes carry a POSIX TZ string (``CET-1CEST,M3.5.0,M10.5.0/3``). Users may give either
that or an IANA name (``Europe/Rome``); an IANA name is turned into the POSIX rule that
the zone's TZif file carries in its footer (RFC 8536, sec. 3.3), so controller and node
evaluate the very same rule with the firmware's own ``lamp.tz``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from lamp import tz as fwtz
from lanterna.errors import Malformed

SYSTEM_ZONEINFO = Path("/usr/share/zoneinfo")


class TimeZoneError(Malformed, ValueError):
    pass


def _tzif(name: str) -> bytes | None:
    if ".." in name or name.startswith("/"):
        return None
    try:
        res = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
        if res.is_file():
            return res.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    path = SYSTEM_ZONEINFO / name
    return path.read_bytes() if path.is_file() else None


def posix_tz(spec: str) -> str:
    """A POSIX TZ string for `spec` (a POSIX string already, or an IANA zone name)."""
    try:
        fwtz.parse(spec)
        return spec
    except ValueError as posix_error:
        data = _tzif(spec)
        if data is None or not data.startswith(b"TZif"):
            raise TimeZoneError(
                f"time zone {spec!r}: neither a POSIX TZ string ({posix_error}) "
                "nor a known IANA zone name"
            ) from None
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii")
    if not footer:
        raise TimeZoneError(f"time zone {spec!r}: its TZif file has no POSIX rule")
    fwtz.parse(footer)
    return footer


def zone(spec: str):
    return fwtz.parse(posix_tz(spec))

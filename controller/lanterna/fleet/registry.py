"""The fleet registry's rules: what a valid site, node name, key, position or CoAP
address is, checked before anything is written to the store.

Names are MQTT topic levels (``{prefix}/{site}/{node}/{leaf}``, docs/protocol.md), so
no '/', no wildcards, no spaces. A key is never echoed in an error: a near-miss key is
still most of a secret. Every refusal is lanterna.errors.Malformed (exit 4) naming the
option it came from.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lanterna.errors import LanternaError, malformed

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# The Sharing Cities lighthouse districts: (lat, lon, IANA zone).
SITES = {
    "greenwich": (51.4826, 0.0077, "Europe/London"),
    "porta-romana": (45.4509, 9.2049, "Europe/Rome"),
    "baixa": (38.7105, -9.1366, "Europe/Lisbon"),
}


class SiteError(LanternaError):
    """A site that is not built in and was given without its position and zone."""


def resolve_site(
    site: str, lat: float | None, lon: float | None, tz: str | None
) -> tuple[float, float, str]:
    """A site's coordinates and zone: what is given, else the built-in site's."""
    if site in SITES:
        s_lat, s_lon, s_tz = SITES[site]
        lat = s_lat if lat is None else lat
        lon = s_lon if lon is None else lon
        tz = s_tz if tz is None else tz
    if lat is None or lon is None or tz is None:
        known = ", ".join(sorted(SITES))
        raise SiteError(f"site {site!r} is not built in ({known}): give --lat, --lon and --tz")
    return lat, lon, tz


def check_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise malformed(
            f"{kind} {value!r}: use letters, digits, '.', '_' and '-' (up to 64), "
            "starting with a letter or digit"
        )
    return value


def check_range(option: str, value: float | None, lo: float, hi: float) -> None:
    if value is not None and not lo <= value <= hi:
        raise malformed(f"{option}: {value} is outside {lo:g}..{hi:g}")


def check_tz(tz: str) -> None:
    """An IANA zone the site's nodes can be given as a POSIX rule."""
    import zoneinfo

    from lanterna.tzinfo import TimeZoneError, posix_tz

    try:
        zoneinfo.ZoneInfo(tz)
        posix_tz(tz)  # the rule the site's nodes will be given
    except (LookupError, ValueError, OSError, TimeZoneError):
        raise malformed(f"--tz {tz!r}: not an IANA time zone name (e.g. Europe/London)") from None


def read_key(key_hex: str | None, key_file: Path | None) -> bytes:
    """The node's 32-byte command key from --key HEX or --key-file FILE ('-': stdin);
    exactly one of them is given (the caller checks)."""
    if key_file is not None:
        source = f"--key-file {key_file}"
        try:
            if str(key_file) == "-":
                text = sys.stdin.read()
            else:
                text = key_file.read_text()
        except OSError as e:
            raise malformed(f"{source}: cannot read it: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise malformed(f"{source}: not text") from None
    else:
        source, text = "--key", key_hex or ""
    text = text.strip()
    # Never echo the value: a near-miss key is still most of a secret.
    if len(text) != 64 or re.fullmatch(r"[0-9a-fA-F]*", text) is None:
        raise malformed(f"{source}: expected the key as 64 hex digits (32 bytes)")
    return bytes.fromhex(text)


def parse_coap(spec: str | None) -> tuple[str | None, int | None]:
    """--coap HOST:PORT ([::1]:5683 for IPv6) -> (host, port); (None, None) if not given."""
    if spec is None:
        return None, None
    host, _, port = spec.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:5683
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise malformed(f"--coap {spec!r}: expected HOST:PORT")
    return host, int(port)


def load_node_board(board_name: str) -> dict:
    """The board a node is registered with: a known name or a file; refused if invalid."""
    from lanterna.boards import load_board
    from lanterna.paths import board_file, boards_dir

    path = board_file(board_name)
    if not path.exists() and path.parent == boards_dir():
        known = ", ".join(sorted(p.stem for p in boards_dir().glob("*.json")))
        raise malformed(f"--board {board_name!r}: no such board (known: {known})")
    return load_board(str(path))

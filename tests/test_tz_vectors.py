"""lamp.tz against CPython's zoneinfo (the IANA database) for every transition 2020-2040.

CPython writes the vectors as JSON lines; tests/firmware/check_tz.py streams them through
lamp.tz inside MicroPython under the pole's heap budget and reports what it checked.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mpharness import run_firmware

CHECKER = Path(__file__).parent / "firmware" / "check_tz.py"
YEARS = range(2020, 2041)
# The TZ strings a site config carries (and the footer of each zone's TZif file).
ZONES = {
    "Europe/London": "GMT0BST,M3.5.0/1,M10.5.0",
    "Europe/Lisbon": "WET0WEST,M3.5.0/1,M10.5.0",
    "Europe/Rome": "CET-1CEST,M3.5.0,M10.5.0/3",
    "Europe/Paris": "CET-1CEST,M3.5.0,M10.5.0/3",
    "Europe/Warsaw": "CET-1CEST,M3.5.0,M10.5.0/3",
    "Europe/Sofia": "EET-2EEST,M3.5.0/3,M10.5.0/4",
    # Beyond the programme's cities: negative DST, southern hemisphere, US rules, no DST.
    "Europe/Dublin": "IST-1GMT0,M10.5.0,M3.5.0/1",
    "Australia/Sydney": "AEST-10AEDT,M10.1.0,M4.1.0/3",
    "America/New_York": "EST5EDT,M3.2.0,M11.1.0",
    "Europe/Istanbul": "<+03>-3",
}
EPOCH = datetime(1970, 1, 1)


def _offset(zi: zoneinfo.ZoneInfo, utc: int) -> tuple[int, str]:
    d = datetime.fromtimestamp(utc, UTC).astimezone(zi)
    off = d.utcoffset()
    assert off is not None
    return int(off.total_seconds()), str(d.tzname())


def _transitions(zi: zoneinfo.ZoneInfo, year: int) -> list[int]:
    # Instants where the offset changes: scan days, then bisect to the second.
    lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    found = []
    prev = _offset(zi, lo)[0]
    for t in range(lo + 86400, hi + 1, 86400):
        cur = _offset(zi, t)[0]
        if cur != prev:
            a, b = t - 86400, t  # offset(a) == prev, offset(b) == cur
            while b - a > 1:
                m = (a + b) // 2
                a, b = (m, b) if _offset(zi, m)[0] == prev else (a, m)
            found.append(b)
            prev = cur
    return found


def _utc_of_local(zi: zoneinfo.ZoneInfo, local: int, fold: int) -> int:
    naive = EPOCH + timedelta(seconds=local)
    return int(naive.replace(tzinfo=zi, fold=fold).timestamp())


def vectors(name: str, posix: str):
    zi = zoneinfo.ZoneInfo(name)
    for year in YEARS:
        trans = _transitions(zi, year)
        # Sampled instants between transitions, every ~9 days at varying hours.
        start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
        for k in range(41):
            u = start + k * (9 * 86400 + 3671)
            off, ab = _offset(zi, u)
            yield {"tz": posix, "k": "o", "u": u, "off": off, "ab": ab}
        if len(trans) == 2:
            # (dst start, dst end) as lamp.tz reports them: the start leads into the
            # dst-named period, whichever comes first in the year (Sydney, Dublin).
            s, e = trans
            if _offset(zi, s)[1] == _std_name(posix):
                s, e = e, s
            yield {"tz": posix, "k": "t", "y": year, "s": s, "e": e}
        else:
            assert not trans, (name, year, trans)
            yield {"tz": posix, "k": "t", "y": year, "s": None, "e": None}
        for t in trans:
            for du in (-3601, -1, 0, 1, 3600):
                off, ab = _offset(zi, t + du)
                yield {"tz": posix, "k": "o", "u": t + du, "off": off, "ab": ab}
            before, after = _offset(zi, t - 1)[0], _offset(zi, t)[0]
            # Wall-clock readings around the jump: in the gap or overlap and at its edges.
            for wall in {t + before - 1, t + before, t + after - 1, t + after}:
                yield from _local_vectors(zi, posix, wall)
            yield from _local_vectors(zi, posix, t + min(before, after) + abs(before - after) // 2)


def _local_vectors(zi, posix, local):
    early, late = _utc_of_local(zi, local, 0), _utc_of_local(zi, local, 1)
    in_gap = _offset(zi, early)[0] + early != local
    kind = "gap" if in_gap else "overlap" if early != late else "plain"
    yield {"tz": posix, "k": "l", "l": local, "later": 0, "u": early, "case": kind}
    if not in_gap:  # lamp.tz maps a gap time forward whatever `later` says
        yield {"tz": posix, "k": "l", "l": local, "later": 1, "u": late, "case": kind}


def _std_name(posix):
    m = re.match(r"<([^>]+)>|([A-Za-z]+)", posix)
    assert m is not None
    return m.group(1) or m.group(2)


def _tzif_footer(name: str) -> str:
    for base in zoneinfo.TZPATH:
        path = Path(base) / name
        if path.exists():
            return path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
    pytest.skip(f"no TZif file for {name}")


@pytest.mark.parametrize("name", sorted(ZONES))
def test_site_tz_strings_are_the_zone_database_rules(name):
    assert _tzif_footer(name) == ZONES[name]


def test_lamp_tz_agrees_with_zoneinfo_at_every_transition_2020_2040(tmp_path):
    path = tmp_path / "tz_vectors.jsonl"
    count = 0
    seen = {"o": 0, "t": 0, "plain": 0, "gap": 0, "overlap": 0}
    with path.open("w") as f:
        for name, posix in ZONES.items():
            for v in vectors(name, posix):
                f.write(json.dumps(v, separators=(",", ":")) + "\n")
                count += 1
                seen[v.get("case", v["k"])] += 1
    # Every kind of vector is present, or the check could pass while proving little.
    assert all(seen.values()), seen
    proc = run_firmware(CHECKER, "check", extra_env={"TZ_VECTORS": str(path)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"TZ-CHECK checked={count} mismatches=0" in out, out
    print(f"tz vectors checked in MicroPython: {count} {seen}")

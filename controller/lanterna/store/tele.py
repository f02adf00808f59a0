"""How a telemetry payload is kept: the fields the readers use as columns, the rest
compressed.

A ``tele`` payload is about 300 bytes of JSON; stored whole beside its own columns it
was 437 bytes a row. ``split`` takes out what views, energy and the tail read (ts,
level, kWh, power, heap) as columns and leaves the rest (source, sensors, units, evse,
uptime, ...) to ``pack``: JSON, deflated against a preset dictionary of the fields every
node sends, so a row's rest is a few dozen bytes. ``join`` puts the payload back
together as the node sent it (equal as JSON; key order aside).

A column takes a field only when it gives it back unchanged (an int level, a float
kWh); anything else (a string level, an int kWh, a ts that is not the canonical form)
stays in the rest, so a malformed payload survives as it came.

The packed form starts with a format byte. ``ZDICT_1`` must never change: rows written
with it are read with it; a better dictionary is format 2.
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import orjson

FORMAT_1 = 1
# The fields and values lamp.telemetry.snapshot sends, as its JSON spells them (what
# deflate finds in the dictionary costs a back-reference instead of the bytes). The most
# common strings go last: deflate's references are cheapest near the end.
ZDICT_1 = (
    b'{"link":{"if":"wlan","status":"got_ip","up":true,"tries":0},"rssi":-67,'
    b'"evse":{"present":true,"state":"A","status":"Available","error_code":"NoError",'
    b'"session":0,"session_active":false,"session_kwh":0.0,"total_kwh":0.0,"power_w":0},'
    b'"sensors":{"bh1750":{"fault":null,"lux_x10":[null,null,null,0]},'
    b'"pms5003":{"fault":null,"pm1":[0,0,0,1],"pm2_5":[0,0,0,1],"pm10":[0,0,0,1]},'
    b'"scd4x":{"fault":null,"co2":[0,0,0,1]},"sds011":{"fault":null,"pm2_5_x10":[0,0,0,1]'
    b',"pm10_x10":[0,0,0,1]},"bme280":{"fault":null,"temp_x10":[0,0,0,6],"rh_x10":[0,0,0,6]'
    b',"pressure_x10":[0,0,0,6]}},"units":{"lux_x10":"lux","co2":"ppm","pm2_5_x10":"ug/m3",'
    b'"pm10_x10":"ug/m3","pm1":"ug/m3","pm2_5":"ug/m3","pm10":"ug/m3",'
    b'"temp_x10":"degC","rh_x10":"%","pressure_x10":"hPa"},"faults":[],"evse":null,'
    b'"mqtt_dropped":0,"uptime_s":'
    b'{"v":1,"source":"schedule","energy":{"switch_on":1,"burn_h":0.0,"source":"model"},'
)

_I32 = 2**31


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def loads(raw: bytes) -> Any:
    """A payload as JSON, or None if it is not JSON. orjson first (1.5 against 6.5 us for
    a tele payload); what it refuses but Python's json takes (NaN, an integer beyond 64
    bits, a lone surrogate escape) is read by json, so both read the same payloads."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _dumps(v: Any) -> bytes:
    try:
        return orjson.dumps(v)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(v, separators=(",", ":")).encode()


def _int_col(v: Any) -> int | None:
    return v if type(v) is int and -_I32 <= v < _I32 else None


def split(
    p: dict[str, Any], ts: float, canonical: bool = False
) -> tuple[int | None, float | None, float | None, int | None, dict[str, Any]]:
    """(level, kwh, power_w, heap_free, rest) of a tele payload whose time is `ts`;
    `canonical`: the caller knows p["ts"] is iso(ts) (it parsed that form)."""
    rest = dict(p)
    if canonical or rest.get("ts") == iso(ts):
        del rest["ts"]
    level = _int_col(rest.get("level"))
    if level is not None:
        del rest["level"]
    heap = _int_col(rest.get("heap_free"))
    if heap is not None:
        del rest["heap_free"]
    kwh = power = None
    e = rest.get("energy")
    if isinstance(e, dict):
        e = dict(e)
        kwh, power = _num(e.get("kwh")), _num(e.get("power_w"))
        # A float goes to its column only; an int is kept in the rest too, so it comes
        # back an int (the column gives a float).
        for k in ("kwh", "power_w"):
            if type(e.get(k)) is float:
                del e[k]
        rest["energy"] = e
    return level, kwh, power, heap, rest


def _num(v: Any) -> float | None:
    if type(v) in (int, float) and abs(v) < 1e300:
        return float(v)
    return None


def join(
    ts: float,
    level: int | None,
    kwh: float | None,
    power_w: float | None,
    heap_free: int | None,
    rest: dict[str, Any],
) -> dict[str, Any]:
    """The payload `split` took apart."""
    p = dict(rest)
    p.setdefault("ts", iso(ts))
    if level is not None:
        p["level"] = level
    if heap_free is not None:
        p["heap_free"] = heap_free
    e = p.get("energy")
    if isinstance(e, dict):
        e = dict(e)
        if kwh is not None:
            e.setdefault("kwh", kwh)
        if power_w is not None:
            e.setdefault("power_w", power_w)
        p["energy"] = e
    return p


# A compressor with ZDICT_1 loaded, copied for each row: setting the dictionary per row
# cost more than the row's own deflate. Window 4 KiB (wbits 12), not 32: the dictionary
# and a rest of a few hundred bytes fit it with room to spare, the stream is the same
# raw deflate (read with wbits 15), the bytes of a node's rest identical, and the copy
# moves 8 KiB instead of 64 (measured: pack 10.1 -> 7.9 us a row). memLevel 4, not 9:
# the same bytes for a payload this small, 8 KiB of hash buffers instead of 256 KiB.
_PRIMED = zlib.compressobj(9, zlib.DEFLATED, -12, 4, zlib.Z_DEFAULT_STRATEGY, ZDICT_1)


def pack(rest: dict[str, Any]) -> bytes:
    c = _PRIMED.copy()
    return bytes((FORMAT_1,)) + c.compress(_dumps(rest)) + c.flush()


def unpack(blob: bytes | memoryview | None) -> dict[str, Any]:
    if blob is None:
        return {}
    blob = bytes(blob)
    if not blob or blob[0] != FORMAT_1:
        raise ValueError(f"telemetry rest: unknown format {blob[:1]!r}")
    d = zlib.decompressobj(-15, ZDICT_1)
    out = json.loads(d.decompress(blob[1:]) + d.flush())
    return out if isinstance(out, dict) else {}

# Runs in MicroPython, called by tests/test_tz_vectors.py (not collected: no test_
# prefix). Streams the zoneinfo vectors in $TZ_VECTORS one JSON line at a time (the whole
# set would not fit the heap) through lamp.tz and prints how many were checked.
import gc
import json
import os

from lamp import tz


def _mismatch(n, v, got):
    if n <= 20:
        print("MISMATCH %r got %r" % (v, got))


def check():
    path = os.getenv("TZ_VECTORS")
    zones = {}
    checked = bad = 0
    with open(path) as f:
        while True:
            line = f.readline()
            if not line:
                break
            v = json.loads(line)
            zone = zones.get(v["tz"])
            if zone is None:
                zone = zones[v["tz"]] = tz.parse(v["tz"])
            k = v["k"]
            if k == "o":
                got = (zone.offset(v["u"]), zone.abbrev(v["u"]), zone.local(v["u"]))
                ok = got == (v["off"], v["ab"], v["u"] + v["off"])
            elif k == "t":
                got = zone.transitions(v["y"])
                ok = got == (None if v["s"] is None else (v["s"], v["e"]))
            else:
                got = zone.utc(v["l"], later=bool(v["later"]))
                ok = got == v["u"]
            checked += 1
            if not ok:
                bad += 1
                _mismatch(bad, v, got)
            if checked % 500 == 0:
                gc.collect()
    print("TZ-CHECK checked=%d mismatches=%d" % (checked, bad))
    assert bad == 0

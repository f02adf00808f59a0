# MicroPython side of tests/test_astro_vectors.py (not collected: no test_ prefix).
# Streams the astral vectors from $ASTRO_VECTORS one line at a time, so the whole set never
# sits in the 110K heap, and prints what it checked for the CPython test to assert.
import gc
import json
import os

from lamp import astro

TOLERANCE_MIN = 1.0  # 60 s
_NAMES = {"sunrise_sunset": ("sunrise", "sunset"), "civil_twilight": ("dawn", "dusk")}


def _run(fn, y, m, d, lat, lon, horizon):
    if fn == "sunrise_sunset":
        return astro.sunrise_sunset(y, m, d, lat, lon)
    if fn == "civil_twilight":
        return astro.civil_twilight(y, m, d, lat, lon)
    return astro.sun(y, m, d, lat, lon, horizon)


def check_vectors():
    checked = 0
    bad = 0
    worst = {"sunrise": 0.0, "sunset": 0.0, "dawn": 0.0, "dusk": 0.0}
    with open(os.getenv("ASTRO_VECTORS")) as f:
        for line in f:
            place, fn, y, m, d, lat, lon, horizon, status, rise, set_ = json.loads(line)
            got = _run(fn, y, m, d, lat, lon, horizon)
            checked += 1
            ok = got[0] == status
            if ok and status == astro.NORMAL and rise is not None:
                names = _NAMES[fn]
                for name, want, have in ((names[0], rise, got[1]), (names[1], set_, got[2])):
                    dev = abs(want - have)
                    if dev > worst[name]:
                        worst[name] = dev
                    ok = ok and dev <= TOLERANCE_MIN
            elif ok and status != astro.NORMAL:
                ok = got[1] is None and got[2] is None
            if not ok:
                bad += 1
                if bad <= 10:
                    print(
                        "MISMATCH %s %s %d-%02d-%02d want %r %r %r got %r"
                        % (place, fn, y, m, d, status, rise, set_, got)
                    )
            if checked % 500 == 0:
                gc.collect()
    for name in ("sunrise", "sunset", "dawn", "dusk"):
        print("ASTRO worst %s %.1f s" % (name, worst[name] * 60))
    print("ASTRO checked=%d mismatches=%d" % (checked, bad))
    assert bad == 0

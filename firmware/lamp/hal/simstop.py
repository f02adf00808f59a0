# A virtual node's stop request (lanterna.sim.stop). The controller asks a virtual node
# to stop by creating the file LANTERNA_STOP names, not with SIGINT: the unix port raises
# a signal's KeyboardInterrupt wherever the process is, and one inside the garbage
# collector leaves the heap locked, so the orderly stop cannot save. SimHal.mains_ok
# (sampled every second by the fault monitor) calls asked(); raised there, between two
# statements, the KeyboardInterrupt takes Ctrl-C's path (lamp.app.Node.start). The file
# is looked for at most every 200 ms of real time.
#
# The same poll takes what a test or `lanterna sim inject` sets on the pole's inputs (a
# failed lamp, a welded relay, lost mains, a day burner): a JSON object in the file
# LANTERNA_STOP + ".inputs", applied to the sim board and removed (lanterna.sim.stop).
import os
import time

_path = os.getenv("LANTERNA_STOP") or ""  # loaded only when it is set
_last = None
_INPUTS = ("mains", "relay_welded", "lamp_failed", "day_burner", "lux", "cp_volts")


def asked(hal=None):
    global _last
    t = time.ticks_ms()
    if _last is not None and time.ticks_diff(t, _last) < 200:
        return
    _last = t
    if hal is not None:
        _inputs(hal)
    try:
        os.stat(_path)
    except OSError:
        return
    raise KeyboardInterrupt


def _inputs(hal):
    p = _path + ".inputs"
    try:
        with open(p) as f:
            text = f.read()
    except OSError:
        return
    import json

    try:
        values = json.loads(text)
    except ValueError:
        values = None
    os.remove(p)
    if not isinstance(values, dict):
        print("inputs: %s: not a JSON object, ignored" % p)
        return
    for k in values:
        if k in _INPUTS:
            setattr(hal, k, values[k])
            print("inputs: %s = %r" % (k, values[k]))
        else:
            print("inputs: %s: not an input of the sim board, ignored" % k)

# A virtual node's stop request (lanterna.sim.stop). The controller asks a virtual node
# to stop by creating the file LANTERNA_STOP names, not with SIGINT: the unix port raises
# a signal's KeyboardInterrupt wherever the process is, and one inside the garbage
# collector leaves the heap locked, so the orderly stop cannot save. SimHal.mains_ok
# (sampled every second by the fault monitor) calls asked(); raised there, between two
# statements, the KeyboardInterrupt takes Ctrl-C's path (lamp.app.Node.start). The file
# is looked for at most every 200 ms of real time.
import os
import time

_path = os.getenv("LANTERNA_STOP") or ""  # loaded only when it is set
_last = None


def asked():
    global _last
    t = time.ticks_ms()
    if _last is not None and time.ticks_diff(t, _last) < 200:
        return
    _last = t
    try:
        os.stat(_path)
    except OSError:
        return
    raise KeyboardInterrupt

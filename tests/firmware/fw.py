# Shared helpers for firmware tests (runs in MicroPython). Not collected: no test_ prefix.
import os
import random

from lamp import hal as _hal
from lamp import unload

REPO = os.getenv("LANTERNA_REPO") or "../.."


def board_path(name):
    return "%s/boards/%s.json" % (REPO, name)


def load_board(name="sim"):
    # Loaded and dropped again, as the app does at boot: the checker's RAM comes back.
    from lamp import board

    try:
        return board.load(board_path(name))
    finally:
        del board
        unload("board")


def sim_hal(**opts):
    return _hal.open(load_board("sim"), **opts)


def raises(exc, fn, *args, **kwargs):
    # The exception `fn` raised (of type `exc`); fails the test if it raised nothing.
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %s" % (exc.__name__, fn))


async def araises(exc, coro):
    # The exception (of type `exc`) awaiting `coro` raised; fails if it raised nothing.
    try:
        await coro
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


# Files of this run's own under /tmp: a test's cwd is the source tree, and other runs of
# the suite may be going on at the same time (MicroPython's os has no getpid).
RUN = random.getrandbits(30)


def fresh(name):
    # "/tmp/lanterna-test-RUN-name", with no such file (nor its ".tmp" twin) left over
    path = "/tmp/lanterna-test-%d-%s" % (RUN, name)
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    return path


def cleanup(prefix=""):
    # Remove this run's files whose name starts with `prefix` (after the run tag).
    start = "lanterna-test-%d-%s" % (RUN, prefix)
    for name in os.listdir("/tmp"):
        if name.startswith(start):
            os.remove("/tmp/" + name)

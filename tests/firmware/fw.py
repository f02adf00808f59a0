# Shared helpers for firmware tests (runs in MicroPython). Not collected: no test_ prefix.
import os

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

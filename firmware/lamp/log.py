# Firmware logging: one line per message, `%` formatting only when the level is on.
# No logging module (too big for the node); secrets must never be passed here.
from lamp import clock

DEBUG, INFO, WARN, ERROR = 0, 1, 2, 3
_NAMES = "DIWE"
level = INFO


def _emit(lvl, tag, msg, args):
    if lvl < level:
        return
    if args:
        msg = msg % args
    print("%s %s %s: %s" % (clock.iso(), _NAMES[lvl], tag, msg))


def debug(tag, msg, *args):
    _emit(DEBUG, tag, msg, args)


def info(tag, msg, *args):
    _emit(INFO, tag, msg, args)


def warn(tag, msg, *args):
    _emit(WARN, tag, msg, args)


def error(tag, msg, *args):
    _emit(ERROR, tag, msg, args)

# Lanterna lamp-post firmware. One module per capability; hardware only through `hal`,
# time only through `clock`.
import sys

VERSION = "0.1.0"


def unload(name):
    # Give a module's RAM back once its one-off work is done (board and schedule checkers):
    # drop it from sys.modules and from this package, so nothing keeps it alive.
    sys.modules.pop("lamp." + name, None)
    pkg = sys.modules.get("lamp")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)

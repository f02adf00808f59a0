# Lanterna lamp-post firmware. One module per capability; hardware only through `hal`,
# time only through `clock`. The resident modules sit here; the subpackages net/, cmd/ and
# ota/ hold code loaded for a use and dropped after it (docs/firmware.md).
import sys

VERSION = "0.1.0"


def unload(name):
    # Give a module's RAM back once its one-off work is done (board and schedule checkers,
    # a command): drop it from sys.modules and from its package, so nothing keeps it
    # alive. name: "board", "net.ntp", or a subpackage ("cmd"), which takes every loaded
    # module of it along. Under CPython (the controller previews schedules with this
    # code) nothing is dropped: RAM is not scarce there, and a re-import costs a compile.
    if sys.implementation.name != "micropython":
        return
    full = "lamp." + name
    for k in [k for k in sys.modules if k.startswith(full + ".")]:
        sys.modules.pop(k)
    sys.modules.pop(full, None)
    i = name.rfind(".")
    pkg = sys.modules.get(full[: 5 + i] if i >= 0 else "lamp")
    name = name[i + 1 :]
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)


def write_json_atomic(path, obj):
    # The one way the node replaces a JSON file: written whole under a temp name, then
    # renamed over the old one, so a power cut leaves the old file or the new one, never
    # half of one (littlefs and POSIX rename atomically). A FAT that refuses to rename
    # over a file (EEXIST) has the old one removed first; any other error leaves the old
    # file as it was. obj: a JSON value, or its text already made (str, bytes or
    # bytearray: written as it is). Raises OSError.
    import os

    tmp = path + ".tmp"
    raw = isinstance(obj, (bytes, bytearray))
    with open(tmp, "wb" if raw else "w") as f:
        if raw or isinstance(obj, str):
            f.write(obj)
        else:
            import json

            json.dump(obj, f)
    try:
        os.rename(tmp, path)
    except OSError as e:
        if e.args[0] != 17:  # EEXIST
            raise
        os.remove(path)
        os.rename(tmp, path)

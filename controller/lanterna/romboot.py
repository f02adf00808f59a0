# Runs under MicroPython on the unix port, not CPython: the sim's stand-in for the pole's
# ROMFS partition. The firmware image (LANTERNA_ROMFS) is read into one buffer at the
# start of the heap and mounted at /rom, first on sys.path, as MicroPython mounts a
# ROMFS partition on the pole; bytecode then runs in place from the image. The
# interpreter is given the board's heap budget plus the image (lanterna.firmware.
# romfs_heap), so the budget is what the node itself may use.
# As a script: `micropython romboot.py ARGS...` boots the node (main) with ARGS.
import os
import sys

import vfs


def mount(path):
    buf = bytearray(os.stat(path)[6])  # one allocation: no growing read, no fragments
    with open(path, "rb") as f:
        f.readinto(buf)
    vfs.mount(vfs.VfsRom(buf), "/rom")
    sys.path.insert(0, "/rom")


if __name__ == "__main__":
    mount(os.getenv("LANTERNA_ROMFS"))
    import main  # noqa: F401 -- boots and runs the node

# Runs under MicroPython on the unix port, not CPython: the sim's stand-in for the pole's
# ROMFS partition. A firmware image is read into one buffer at the start of the heap and
# mounted at /rom, first on sys.path, as MicroPython mounts a ROMFS partition on the
# pole; bytecode then runs in place from the image. The interpreter is given the board's
# heap budget plus the image (lanterna.device.firmware.romfs_heap), so the budget is what the
# node itself may use.
# As a script: `micropython romboot.py ARGS...` boots the node (main) with ARGS, from the
# current directory as its flash: with a boot.py there (a node with application slots,
# docs/ota.md) boot.py picks the slot; then a main.py at the root (the loader a pole is
# provisioned with) runs it in whichever form it holds, else the slot's image runs;
# without a boot.py, the image named by LANTERNA_ROMFS does.
import os
import sys

import vfs


def mount(path):
    buf = bytearray(os.stat(path)[6])  # one allocation: no growing read, no fragments
    with open(path, "rb") as f:
        f.readinto(buf)
    vfs.mount(vfs.VfsRom(buf), "/rom")
    sys.path.insert(0, "/rom")


def _boot():
    # -> the slot directory boot.py chose, or None (no boot.py: no slots on this node).
    try:
        os.stat("boot.py")
    except OSError:
        return None
    sys.path.insert(0, ".")
    try:
        import boot
    finally:
        sys.path.remove(".")
    slot = boot.SLOT
    del sys.modules["boot"]
    return slot


def _loader(slot):
    # A pole's flash (provisioned: the loader, firmware/loader.py, is main.py at the
    # root): it runs after boot.py in boot.py's namespace, as MicroPython runs main.py,
    # and picks the slot's form (files, the romfs partition's stand-in, the image in RAM).
    with open("main.py") as f:
        code = compile(f.read(), "main.py", "exec")
    exec(code, {"__name__": "__main__", "SLOT": slot})


if __name__ == "__main__":
    slot = _boot()
    loader = slot is not None and "main.py" in os.listdir()
    if not loader:  # a sim node's flash (boot.py and slots only): the slot's image in RAM
        mount(os.getenv("LANTERNA_ROMFS") if slot is None else slot + "lanterna.romfs")
    try:
        if loader:
            _loader(slot)
        else:
            import main  # noqa: F401 -- boots and runs the node
    except Exception as e:  # noqa: BLE001 -- a crashing application: the pole resets
        sys.print_exception(e)
        sys.exit(3)  # a soft reset: the district restarts the node; boot.py counts it

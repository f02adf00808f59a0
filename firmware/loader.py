# Written to a device's root as main.py by provisioning (docs/provisioning.md): MicroPython
# runs it after boot.py, in the same namespace, so SLOT is what boot.py chose. It puts the
# slot's code first on sys.path and runs the application's main from it
# (docs/firmware.md, "Slots: files or ROMFS"). A slot holds its code in one or both forms:
#   lanterna.romfs   the ROMFS image: where the firmware has a romfs partition
#                    (lamp.hal.romfs) it is copied there once per switch, checked against
#                    the slot's manifest at every boot, and runs in place from flash;
#   main.mpy, lamp/  the same modules as .mpy files on littlefs: what a stock MicroPython
#                    image runs (no ROMFS), and the fallback when the partition fails.
# Without files or a partition the image is read into RAM (the sim; a PSRAM board). The
# loader never stops a node whose slot holds either form: each failure falls to the next.
import os
import sys

slot = globals().get("SLOT")
if slot is None:
    raise SystemExit("no complete application slot on this device: provision it again")


def _has(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _image(d):
    # -> (size, sha256 hex) of the slot's image as its manifest lists it, or None
    import json

    try:
        with open(d + "manifest.json") as f:
            for e in json.load(f)["files"]:
                if e["path"] == "lanterna.romfs":
                    return e["size"], e["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _partition(d, files, img):
    # The ROMFS path: -> True once the partition holds the slot's image, mounted at /rom.
    # lamp.hal.romfs comes from the slot's files (nothing may run from the partition while
    # it is written) and is dropped again before the application imports anything.
    sys.path.insert(0, files)
    try:
        from lamp.hal import romfs

        dev = romfs.partition()
        if dev is None:
            return False
        size, digest = img
        if not romfs.holds(dev, size, digest):
            print("loader: copying %slanterna.romfs into the romfs partition" % d)
            romfs.copy(dev, d + "lanterna.romfs", size)
            if not romfs.holds(dev, size, digest):
                print("loader: the romfs partition does not verify: running from files")
                return False
        romfs.mount(dev, size)
        return True
    except Exception as e:  # noqa: BLE001 -- any failure: the files still run
        print("loader: romfs partition: %r: running from files" % (e,))
        return False
    finally:
        sys.path.remove(files)
        for k in [k for k in sys.modules if k == "lamp" or k.startswith("lamp.")]:
            del sys.modules[k]


def _ram(path):
    # The image read into one buffer and mounted at /rom (romboot does the same).
    import vfs

    buf = bytearray(os.stat(path)[6])
    with open(path, "rb") as f:
        f.readinto(buf)
    try:
        vfs.umount("/rom")
    except OSError:
        pass
    vfs.mount(vfs.VfsRom(buf), "/rom")


def _run(d):
    # -> the path entry the application's modules come from
    for p in ("/rom", "/rom/lib"):  # the pole mounts a romfs partition at start, maybe stale
        while p in sys.path:
            sys.path.remove(p)
    files = os.getcwd().rstrip("/") + "/" + d[:-1]  # absolute: the app may chdir
    has_files = _has(d + "main.mpy")
    img = _image(d) if _has(d + "lanterna.romfs") else None
    if img is not None and has_files and _partition(d, files, img):
        return "/rom"
    if has_files:
        return files
    if img is not None:
        _ram(d + "lanterna.romfs")
        return "/rom"
    raise SystemExit("slot %s holds neither main.mpy nor lanterna.romfs" % d)


sys.path.insert(0, _run(slot))
for _n in ("_has", "_image", "_partition", "_ram", "_run"):  # the REPL's globals keep them
    globals().pop(_n)
import gc  # noqa: E402

gc.collect()
import main  # noqa: E402, F401 -- the node, from the slot's files or its image

# Written to a device's root as main.py by provisioning (docs/provisioning.md): MicroPython
# runs it after boot.py, in the same namespace, so SLOT is what boot.py chose. It mounts
# that slot's image and runs the application's main from it.
import sys

slot = globals().get("SLOT")
if slot is None:
    raise SystemExit("no complete application slot on this device: provision it again")
if "/rom" not in sys.path:  # the virtual board mounts the slot itself
    try:
        import romboot  # the sim: the image read into RAM
    except ImportError:  # the pole: the slot's ROMFS partition (not built yet, docs/ota.md)
        raise SystemExit("this device cannot mount %slanterna.romfs yet" % slot)
    romboot.mount(slot + "lanterna.romfs")
del sys.argv[1:]  # main.py's defaults: board.json and config.json at the root
import main  # noqa: E402, F401 -- /rom/main.mpy: the node

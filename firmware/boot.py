# Runs first on every reset. Kept minimal on purpose: nothing here may fail, so that
# main.py always gets to light the lamp. It picks the application slot (docs/ota.md,
# "Slots and trial boots"): ota.json names the slot to run; a slot on trial counts its
# boots here, and after MAX_BOOTS boots without the application confirming its health
# the previous slot runs again. ota.json is only ever replaced whole (a rename), so a
# power cut leaves the old state or the new one.
import gc
import json
import os

MAX_BOOTS = 3


def _complete(d):
    # A slot is complete once its manifest.json exists: the installer writes it last.
    try:
        os.stat(d + "manifest.json")
        return True
    except OSError:
        return False


def choose(root=""):
    # -> the directory of the slot to run ("slots/a/"), or None when the node has no
    # slots (the firmware sits at the root, as flashed before OTA).
    try:
        with open(root + "ota.json") as f:
            s = json.load(f)
        slot = s["slot"]
    except (OSError, ValueError, KeyError, TypeError):
        s, slot = None, "a"
    if s is not None and s.get("trial"):
        s["boots"] = s.get("boots", 0) + 1
        if s["boots"] > MAX_BOOTS and s.get("prev"):
            s = {
                "slot": s["prev"],
                "prev": None,
                "trial": False,
                "boots": 0,
                "result": 8,  # LwM2M Update Result: update failed
                "detail": "rolled back: %d boots without a healthy start" % MAX_BOOTS,
            }
        try:
            with open(root + "ota.json.new", "w") as f:
                json.dump(s, f)
            os.rename(root + "ota.json.new", root + "ota.json")
        except OSError:
            pass  # a full or failing flash: run the slot anyway, the lamp comes first
        slot = s["slot"]
    for d in (slot, "b" if slot == "a" else "a"):  # the other only if a flash fault ate it
        if _complete(root + "slots/" + d + "/"):
            return root + "slots/" + d + "/"
    return None


SLOT = choose()
gc.collect()

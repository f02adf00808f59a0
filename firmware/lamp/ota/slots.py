# The boot state of the application slots (docs/ota.md, "Slots and trial boots"): read,
# confirmed, given up. Small on purpose: the application loads it on a trial boot to
# confirm or roll back without the installer (lamp.ota.install) and its signature check.
import json

from lamp import write_json_atomic
from lamp.numbers import R_FAILED, R_SUCCESS

STATE_FILE = "ota.json"
MANIFEST = "manifest.json"


def state(root=""):
    # ota.json with every key present (a missing file: slot a, nothing pending)
    st = {"slot": "a", "prev": None, "trial": False, "boots": 0, "result": 0, "detail": ""}
    try:
        with open(root + STATE_FILE) as f:
            got = json.load(f)
        for k in st:
            if k in got:
                st[k] = got[k]
    except (OSError, ValueError, TypeError):
        pass
    return st


def _put(root, st):
    # Whole-file replace: boot.py reads the old state or the new one, never half of one.
    write_json_atomic(root + STATE_FILE, st)


def slot_version(root, slot):
    try:
        with open("%sslots/%s/%s" % (root, slot, MANIFEST)) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def confirm(root=""):
    # The app is healthy on the new slot: keep it. -> False when there was no trial.
    st = state(root)
    if not st["trial"]:
        return False
    v = slot_version(root, st["slot"])
    _put(root, _boot_state(st["slot"], st["prev"], False, R_SUCCESS, "updated to %s" % v))
    return True


def fail(root, detail):
    # Health not reached within the window: back to the previous slot now (the app then
    # reboots). -> False when there is nothing to go back to.
    st = state(root)
    if not st["trial"] or st["prev"] not in ("a", "b"):
        return False
    _put(root, _boot_state(st["prev"], None, False, R_FAILED, detail))
    return True


def _boot_state(slot, prev, trial, result, detail):
    return {
        "slot": slot,
        "prev": prev,
        "trial": trial,
        "boots": 0,
        "result": result,
        "detail": detail,
    }

"""Application slots at boot (docs/ota.md, "Slots and trial boots"), in the real
MicroPython: a virtual node is flashed with boot.py and the build in slot a and boots
from it; boot.py runs the slot ota.json names, counts the boots of a slot on trial and,
after MAX_BOOTS without the application confirming its health, runs the previous slot
again and says why in ota.json; a slot without its manifest (never complete) or an
unreadable ota.json never stops the lamp."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from lanterna.device import firmware as fw
from lanterna.paths import ROMBOOT, board_file, tool
from lanterna.sim.district import prepare

ROMBOOT = str(ROMBOOT)
BANNER = "heap budget"  # the node's boot line: the application is running


@pytest.fixture
def node(tmp_path) -> Path:
    # A broker that is never there: the node runs offline, which is all boot needs.
    return prepare(tmp_path / "state", 1, "greenwich", "mqtt://127.0.0.1:9")[0].dir


def boot(spawn, d: Path):
    """One reset of the node in `d`: its process, once it has booted or ended."""
    env = dict(os.environ, MICROPYPATH=".frozen")
    env.pop("LANTERNA_ROMFS", None)  # nothing to fall back on: the slot must be used
    heap = fw.romfs_heap(2 * 1024 * 1024, d / "slots" / "a" / fw.ROMFS_NAME)
    args = [tool("micropython"), "-X", f"heapsize={heap}", ROMBOOT]
    args += ["--board", str(board_file("sim-s3")), "--config", "config.json"]
    return spawn(args, cwd=d, env=env)


def state(d: Path) -> dict:
    return json.loads((d / "ota.json").read_text())


def crashing_slot(d: Path, slot: str) -> None:
    """A complete slot whose application raises at start, as a bad bundle's would."""
    src = d.parent / "crash-src"
    src.mkdir()
    (src / "main.py").write_text('raise RuntimeError("crash at start")\n')
    out = d.parent / "crash-build"
    fw.build(out, src)
    (out / fw.ROMFS_NAME).write_bytes(fw.app_image(out))
    shutil.copyfile(out / "main.py", out / "boot.py")  # factory_files wants one
    for rel, data in fw.factory_files(out, "9.9.9").items():
        if rel.startswith("slots/"):
            p = d / rel.replace("slots/a/", f"slots/{slot}/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)


def test_a_flashed_node_boots_from_slot_a(spawn, node):
    assert (node / "boot.py").read_bytes() == (fw.firmware_dir() / "boot.py").read_bytes()
    manifest = json.loads((node / "slots/a/manifest.json").read_text())
    assert manifest["version"] == fw.firmware_version()
    p = boot(spawn, node)
    line = p.wait_for(BANNER)
    assert re.search(r"lanterna \d+\.\d+\.\d+ node greenwich-001", line), line
    assert not (node / "ota.json").exists(), "a boot with nothing on trial writes nothing"


def test_a_slot_on_trial_that_crashes_is_rolled_back_after_max_boots(spawn, node):
    crashing_slot(node, "b")
    trial = {"slot": "b", "prev": "a", "trial": True, "boots": 0, "result": 0, "detail": ""}
    (node / "ota.json").write_text(json.dumps(trial))
    max_boots = int(re.search(r"^MAX_BOOTS = (\d+)", (node / "boot.py").read_text(), re.M)[1])
    for n in range(1, max_boots + 1):
        p = boot(spawn, node)
        p.wait_for("crash at start")
        assert p.p.wait(10) == 3, "a crashed application is a soft reset"
        assert state(node)["slot"] == "b" and state(node)["boots"] == n
    p = boot(spawn, node)  # one more reset: boot.py gives up on b
    p.wait_for(BANNER)
    s = state(node)
    assert (s["slot"], s["prev"], s["trial"], s["result"]) == ("a", None, False, 8), s
    assert "rolled back" in s["detail"]
    assert not any("crash at start" in line for line in p.lines)


def test_a_confirmed_slot_stays(spawn, node):
    crashing_slot(node, "b")  # complete but never named on trial: a stays
    ok = {"slot": "a", "prev": "b", "trial": False, "boots": 0, "result": 1, "detail": ""}
    (node / "ota.json").write_text(json.dumps(ok))
    boot(spawn, node).wait_for(BANNER)
    assert state(node) == ok


@pytest.mark.parametrize(
    "ota_json",
    [
        b"{not json",
        b"",
        json.dumps({"slot": "b", "prev": "a", "trial": True, "boots": 0}).encode(),
    ],
    ids=["garbage", "empty", "names-an-incomplete-slot"],
)
def test_boot_never_fails_the_lamp(spawn, node, ota_json):
    # slots/b has files but no manifest.json: an install cut short, never complete.
    (node / "slots/b").mkdir()
    (node / "slots/b/main.py").write_text("raise SystemExit(9)\n")
    (node / "ota.json").write_bytes(ota_json)
    boot(spawn, node).wait_for(BANNER)


def trial_of_a_copy(d: Path, **cfg) -> None:
    """Slot b = slot a, on trial; the node's config gets `cfg`."""
    shutil.copytree(d / "slots/a", d / "slots/b")
    trial = {"slot": "b", "prev": "a", "trial": True, "boots": 0, "result": 0, "detail": ""}
    (d / "ota.json").write_text(json.dumps(trial))
    c = json.loads((d / "config.json").read_text())
    c.update(cfg)
    (d / "config.json").write_text(json.dumps(c))


def test_a_healthy_trial_is_confirmed(spawn, tmp_path, mosquitto):
    n = prepare(tmp_path / "state", 1, "greenwich", mosquitto.url)[0]
    creds = json.loads((tmp_path / "state/credentials.json").read_text())
    mosquitto.add_users({n.node: creds[n.node]["password"]})
    trial_of_a_copy(n.dir, ota_health_s=2)
    p = boot(spawn, n.dir)
    line = p.wait_for("event boot")
    assert '"ota": {' in line and '"trial": true' in line, line  # the boot says it
    line = p.wait_for("event ota", timeout=30)
    assert '"result": 1' in line, line
    s = state(n.dir)
    assert (s["slot"], s["prev"], s["trial"], s["result"]) == ("b", "a", False, 1), s


def test_a_trial_never_healthy_goes_back_to_the_previous_slot(spawn, node):
    # No broker at all: the node is never healthy; after ota_trial_s it gives up.
    trial_of_a_copy(node, ota_health_s=2, ota_trial_s=10)
    p = boot(spawn, node)
    line = p.wait_for("event ota", timeout=40)
    assert '"result": 8' in line and "not healthy" in line, line
    assert p.p.wait(20) == 3, "it resets at once into the previous slot"
    s = state(node)
    assert (s["slot"], s["trial"], s["result"]) == ("a", False, 8), s
    boot(spawn, node).wait_for(BANNER)
    assert state(node) == s, "a boot with nothing on trial changes nothing"


def test_power_cuts_in_the_first_boots_never_brick_the_node(spawn, node):
    # SIGKILL at random points of the first boots of a slot on trial (boot.py counting
    # the boot and rewriting ota.json, the application starting): after every cut,
    # ota.json is whole and names a complete slot, and the next boot lights the lamp.
    import random
    import signal

    rng = random.Random(7)
    shutil.copytree(node / "slots/a", node / "slots/b")
    trial = {"slot": "b", "prev": "a", "trial": True, "boots": 0, "result": 0, "detail": ""}
    (node / "ota.json").write_text(json.dumps(trial))
    for _ in range(25):
        delay = 0.0 if rng.random() < 0.2 else rng.random() * 0.15
        p = boot(spawn, node)
        time.sleep(delay)  # a random cut point in the first 150 ms, not a synchronisation
        p.p.send_signal(signal.SIGKILL)
        p.p.wait(10)
        s = state(node)  # parses: never half-written
        assert (node / "slots" / s["slot"] / "manifest.json").exists(), s
    boot(spawn, node).wait_for(BANNER)
    s = state(node)
    assert s["slot"] in ("a", "b") and s["boots"] <= 4, s  # counted, or rolled back

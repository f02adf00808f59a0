"""A pole's boot on the unix port (docs/firmware.md, "Slots: files or ROMFS"), in the real
MicroPython: the flash as provisioning writes it (boot.py, the loader as main.py, slot a)
and romboot standing in for the reset (boot.py, then main.py in its namespace, as the
ESP32 port runs them). A slot of plain .mpy files boots on a firmware without ROMFS and
lights within a second; a firmware with a romfs partition (its file stand-in,
LANTERNA_ROMFS_PART, with esp32.Partition's block API) gets the slot's image copied in
and boots from it, and a power cut (kill -9 of the process doing the copy) at any step
still leaves a node that boots a complete slot; a partition that fails falls back to the
files."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from test_ota_install import keys  # noqa: F401 -- the fixture: a throwaway fleet key

from lanterna.device import firmware as fw
from lanterna.device.provision import node_config
from lanterna.paths import ROMBOOT, board_file, tool

LEVEL = " level "  # the lighting loop's first line: the lamp is lit
BANNER = "heap budget"
PART_BYTES = 128 * 1024  # the romfs partition of MicroPython's partitions-4MiB-romfs.csv
BLOCK = 4096


def flash(d: Path, forms: tuple[str, ...]) -> Path:
    """A pole's flash in `d`: boot.py, the loader as main.py, slot a in `forms`, config."""
    d.mkdir(parents=True, exist_ok=True)
    for rel, data in fw.factory_files(fw.cached_build(manifest="sim"), "0.1.0", forms).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    (d / "main.py").write_bytes((fw.firmware_dir() / "loader.py").read_bytes())
    cfg = node_config(
        "pole-1", "greenwich", 51.48, 0.0, "GMT0BST,M3.5.0/1,M10.5.0", None, "00" * 32
    )
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def image_entry(d: Path) -> dict:
    files = json.loads((d / "slots/a/manifest.json").read_text())["files"]
    return next(f for f in files if f["path"] == fw.ROMFS_NAME)


def partition(path: Path, size: int = PART_BYTES, fill: bytes = b"\xff") -> Path:
    path.write_bytes(fill * size)  # erased flash
    return path


def boot(spawn, d: Path, part: Path | None = None, step: bool = False, heap: int = 2 << 20):
    """One reset of the pole in `d` (sim-s3's budget; the image, when one is mounted from
    the partition stand-in, is read into RAM outside it)."""
    env = dict(os.environ, MICROPYPATH=".frozen")
    env.pop("LANTERNA_ROMFS", None)
    env.pop("LANTERNA_ROMFS_STEP", None)
    if part is not None:
        env["LANTERNA_ROMFS_PART"] = str(part)
    if step:
        env["LANTERNA_ROMFS_STEP"] = "1"
    image = d / "slots/a" / fw.ROMFS_NAME
    if image.exists():
        heap = fw.romfs_heap(heap, image)
    args = [tool("micropython"), "-X", f"heapsize={heap}", str(ROMBOOT)]
    args += ["--board", str(board_file("sim-s3")), "--config", "config.json"]
    kw = {"stdin": subprocess.PIPE} if step else {}
    return spawn(args, cwd=d, env=env, **kw)


def holds_image(part: Path, d: Path) -> bool:
    e = image_entry(d)
    return hashlib.sha256(part.read_bytes()[: e["size"]]).hexdigest() == e["sha256"]


def test_a_files_slot_boots_and_lights_within_a_second(spawn, tmp_path):
    d = flash(tmp_path / "pole", ("files",))
    assert not (d / "slots/a" / fw.ROMFS_NAME).exists()
    assert (d / "slots/a/lamp/app.mpy").exists()
    manifest = json.loads((d / "slots/a/manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert "main.mpy" in paths and "lamp/app.mpy" in paths  # every file, with its sha256
    for f in manifest["files"]:
        data = (d / "slots/a" / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
    t0 = time.monotonic()
    p = boot(spawn, d)
    line = p.wait_for(LEVEL)
    # Warp 1, the pole's own speed: from power-on (the process) to a lit lamp.
    assert time.monotonic() - t0 < 1.0, p.lines
    assert "loader:" not in "\n".join(p.lines)  # no partition, no image: nothing to say
    assert line.split()[1] == "level", line


def test_an_image_slot_without_a_partition_runs_from_ram(spawn, tmp_path):
    d = flash(tmp_path / "pole", ("romfs",))
    boot(spawn, d).wait_for(LEVEL)


def test_a_romfs_board_boots_from_its_partition_and_checks_it_at_every_boot(spawn, tmp_path):
    d = flash(tmp_path / "pole", ("romfs", "files"))
    part = partition(tmp_path / "romfs.part")
    p = boot(spawn, d, part)
    p.wait_for(LEVEL)
    assert any("copying slots/a/lanterna.romfs into the romfs partition" in x for x in p.lines)
    assert holds_image(part, d)
    p.p.kill()
    p.p.wait()
    before = part.read_bytes()
    p = boot(spawn, d, part)  # the copy verifies: nothing written
    p.wait_for(LEVEL)
    assert not any("copying" in x for x in p.lines), p.lines
    assert part.read_bytes() == before


def test_a_partition_that_cannot_hold_the_image_falls_back_to_the_files(spawn, tmp_path):
    d = flash(tmp_path / "pole", ("romfs", "files"))
    part = partition(tmp_path / "romfs.part", size=BLOCK)  # far too small
    p = boot(spawn, d, part)
    p.wait_for(LEVEL)
    assert any("running from files" in x for x in p.lines), p.lines


def steps(size: int) -> int:
    # lamp.hal.romfs.copy: erase block 0, erase and write blocks 1..last, write block 0.
    return 2 + 2 * ((size - 1) // BLOCK)


@pytest.mark.parametrize("seed", [14])
def test_a_power_cut_anywhere_in_the_copy_still_boots_a_complete_slot(spawn, tmp_path, seed):
    d = flash(tmp_path / "pole", ("romfs", "files"))
    part = partition(tmp_path / "romfs.part")
    n = steps(image_entry(d)["size"])
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(n), 20))
    for k in cuts:
        p = boot(spawn, d, part, step=True)
        for i in range(k):
            p.wait_for(f"romfs step {i}")
            p.p.stdin.write("\n")
            p.p.stdin.flush()
        p.wait_for(f"romfs step {k}")
        p.p.kill()  # SIGKILL: the power goes mid-copy, before step k
        p.p.wait()
        assert not holds_image(part, d), f"cut at step {k} of {n}: the copy cannot be whole"
        assert part.read_bytes()[:3] != b"\xd2\xcd\x31", "block 0 is written last"
        p = boot(spawn, d, part)  # power back: copied again, then it boots from it
        p.wait_for(LEVEL)
        assert holds_image(part, d), f"after a cut at step {k}"
        p.p.kill()
        p.p.wait()
        partition(part, fill=b"\x00")  # the next trial starts from another old content


def test_an_update_installs_the_form_the_running_slot_has(spawn, tmp_path, keys):  # noqa: F811
    # One signed bundle (main.py and the image) for both: a files node (a stock image)
    # gets the files unpacked from the verified image, an image node only the image.
    from test_ota_install import run_cases

    from lanterna.ota import bundle as ob

    built = ob.build(fw.firmware_dir(), tmp_path / "new.ota", "1.2.3", keys["fleet"],
                     boards=["sim-s3"])  # fmt: skip
    files_node = flash(tmp_path / "files", ("files",))
    image_node = flash(tmp_path / "image", ("romfs",))
    cases = [
        {
            "what": w,
            "bundle": str(built.path),
            "root": f"{d}/",
            "seed": 3,
            "chunk": 4096,
            "board": "sim-s3",
        }  # fmt: skip
        for w, d in (("files", files_node), ("image", image_node))
    ]
    got = run_cases(tmp_path, keys, cases)
    assert got["files"]["result"] == 1 and got["image"]["result"] == 1, got
    assert (files_node / "slots/b/lamp/app.mpy").exists()
    assert (files_node / "slots/b/main.mpy").exists()
    assert not (image_node / "slots/b/main.mpy").exists()
    for d in (files_node, image_node):
        assert (d / "slots/b" / fw.ROMFS_NAME).exists()  # the image always: the source
        p = boot(spawn, d)
        assert "lanterna 1.2.3 node" in p.wait_for(BANNER)
        p.wait_for(LEVEL)
        p.p.kill()
        p.p.wait()
    # The files node ran its files: with the image gone it still boots the update.
    (files_node / "slots/b" / fw.ROMFS_NAME).unlink()
    assert "lanterna 1.2.3 node" in boot(spawn, files_node).wait_for(BANNER)


# -- provisioning: the form the board's firmware runs, through real mpremote ---------------


def _provision_rig(spawn, tmp_path, mosquitto, part: Path | None = None):
    from test_provision import virtual_board

    home = tmp_path / "home"
    home.mkdir()
    env = dict(
        os.environ,
        LANTERNA_HOME=str(home),
        LANTERNA_BROKER=mosquitto.url,
        LANTERNA_BROKER_PASSWORD=mosquitto.users["controller"],
    )
    env.pop("LANTERNA_ROMFS_PART", None)
    board_env = dict(env, LANTERNA_ROMFS_PART=str(part)) if part else env
    flash, url, _ = virtual_board(spawn, board_env, tmp_path)
    return env, flash, url


def _provision(env, url: str, board: str, *extra: str) -> subprocess.CompletedProcess:
    from test_provision import lanterna

    return lanterna(env, "provision", "--port", url, "--board", board, "--node", "pole-2",
                    "--site", "greenwich", "--lat", "51.48", "--lon", "0.0", "--tz",
                    "Europe/London", *extra)  # fmt: skip


def test_provision_refuses_a_micropython_older_than_the_board_needs(spawn, tmp_path, mosquitto):
    env, flash, url = _provision_rig(spawn, tmp_path, mosquitto)
    spec = json.loads(board_file("sim-s3").read_text())
    spec["image"]["micropython"] = "99.0.0"  # newer than the interpreter the board runs
    board = tmp_path / "future.json"
    board.write_text(json.dumps(spec))
    p = _provision(env, url, str(board))
    assert p.returncode == 4, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "is older than 99.0.0" in lines[0], p.stderr
    assert not any(flash.iterdir()), "nothing written"
    assert not (tmp_path / "home" / "credentials.json").exists(), "no secret made"


@pytest.mark.parametrize("romfs", [False, True], ids=["stock", "romfs-partition"])
def test_provision_writes_the_slot_form_the_firmware_runs(spawn, tmp_path, mosquitto, romfs):
    part = partition(tmp_path / "romfs.part") if romfs else None
    env, flash, url = _provision_rig(spawn, tmp_path, mosquitto, part)
    p = _provision(env, url, "sim-s3")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (flash / "slots/a/main.mpy").exists() and (flash / "slots/a/lamp/app.mpy").exists()
    assert (flash / "slots/a" / fw.ROMFS_NAME).exists() is romfs
    if romfs:  # reset by provisioning, the board copies the slot's image into its partition
        deadline = time.monotonic() + 60
        while not holds_image(part, flash):
            assert time.monotonic() < deadline, "the partition never got the image"
            time.sleep(0.2)  # polling the partition the board writes: no other signal

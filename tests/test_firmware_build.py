"""`lanterna firmware build` (make mpy): every module compiles and the result runs."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from collections import Counter

import pytest

from lanterna.device import firmware as fw
from lanterna.ota import bundle as ob
from lanterna.paths import firmware_dir, tool


def test_every_module_compiles_and_sizes_add_up(tmp_path, repo, lanterna_cmd):
    out = tmp_path / "fw"
    proc = subprocess.run(
        [*lanterna_cmd, "firmware", "build", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    paths = {m["path"] for m in report["modules"]}
    sources = {p.relative_to(repo / "firmware") for p in fw.sources(repo / "firmware")}
    assert len(paths) == len(sources)
    assert {"boot.py", "main.py", "lamp/app.mpy", "lamp/hal/sim.mpy"} <= paths
    assert report["total_bytes"] == sum(m["bytes"] for m in report["modules"])
    for m in report["modules"]:
        assert (out / m["path"]).stat().st_size == m["bytes"] > 0


def test_compiled_firmware_boots_in_micropython(tmp_path, repo):
    out = tmp_path / "fw"
    fw.build(out)
    env = dict(os.environ, MICROPYPATH=f"{out}:.frozen")
    proc = subprocess.run(
        [
            tool("micropython"),
            "-X",
            "heapsize=110K",
            "-c",
            "import sys; from lamp import start; print(start.__file__); "
            f"sys.exit(start.boot(['--board', '{repo}/boards/esp32-devkitc.json']))",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    # The .mpy modules load; the esp32 board is refused on the unix port with one line.
    assert "start.mpy" in proc.stdout
    assert proc.returncode == 1
    assert "needs an ESP32" in proc.stderr


def test_module_that_does_not_compile_fails_the_build(tmp_path):
    src = tmp_path / "src"
    (src / "lamp").mkdir(parents=True)
    (src / "lamp" / "good.py").write_text("X = 1\n")
    (src / "lamp" / "broken.py").write_text("def f(:\n    pass\n")
    with pytest.raises(fw.FirmwareBuildError, match=r"lamp/broken.py: .*SyntaxError"):
        fw.build(tmp_path / "out", src)


def test_esp32_image_leaves_the_simulator_out(tmp_path, repo):
    paths = {m.path for m in fw.build(tmp_path / "esp32", manifest="esp32")}
    assert {"boot.py", "main.py", "loader.py", "lamp/app.mpy", "lamp/hal/esp32.mpy"} <= paths
    assert "lamp/net/mqtt.mpy" in paths and "lamp/ota/install.mpy" in paths
    assert not [p for p in paths if p.startswith(("lamp/hal/sim", "lamp/hal/simdev/"))]
    sim = {m.path for m in fw.build(tmp_path / "sim", manifest="sim")}
    assert "lamp/hal/esp32.mpy" not in sim and "lamp/hal/simdev/bme280.mpy" in sim
    # Between them the manifests ship every module; neither ships the manifests.
    every = {
        str(p.relative_to(repo / "firmware").with_suffix(".mpy"))
        if p.name not in fw.ENTRY_POINTS
        else p.name
        for p in fw.sources(repo / "firmware")
    }
    assert paths | sim == every
    assert not [p for p in paths | sim if p.startswith("manifest/")]


def test_bundles_and_boards_pick_their_manifests():
    assert ob.board_manifests(["esp32-devkitc", "esp32-s3-devkitc-1"]) == ["esp32"]
    assert ob.board_manifests(["olimex-esp32-poe", "sim"]) == ["esp32", "sim"]
    assert fw.manifests() == ["esp32", "sim"]
    with pytest.raises(fw.FirmwareBuildError, match="no manifest 'esp8266'"):
        fw.manifest_files("esp8266")


def test_every_firmware_function_is_called_somewhere(repo):
    # Dead code costs flash on every pole and, in a resident module, heap: each function
    # and method the firmware defines is named somewhere else than its definition.
    dirs = ("firmware", "controller", "tests", "bench")
    # Every word of every file counted once: the same count as a \bname\b search per
    # function, without scanning the whole tree again for each of several hundred names.
    words = Counter(
        w for d in dirs for p in (repo / d).rglob("*.py") for w in re.findall(r"\w+", p.read_text())
    )
    dead = []
    for p in fw.sources(repo / "firmware"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if not node.name.startswith("__"):
                    if words[node.name] < 2:
                        dead.append(f"{p.relative_to(repo)}: {node.name}")
    assert dead == []


def test_firmware_build_for_a_board_obeys_its_manifest(tmp_path, lanterna_cmd):
    out = tmp_path / "esp32"
    proc = subprocess.run(
        [*lanterna_cmd, "firmware", "build", "--board", "esp32-devkitc", "--out", str(out)]
        + ["--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    paths = {m["path"] for m in report["modules"]}
    src = firmware_dir()
    assert paths == {str(fw.built_name(p.relative_to(src))) for p in fw.manifest_files("esp32")}
    assert "lamp/hal/esp32.mpy" in paths and "lamp/hal/sim.mpy" not in paths
    assert not (out / "lamp" / "hal" / "simdev").exists()

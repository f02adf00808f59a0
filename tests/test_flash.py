"""`lanterna flash`: the esptool command built per board (chip, offset, baud), the image
checked before anything runs (an ESP image for the board's chip), and one clear line for
a board that cannot be flashed, a bad board name or a port that is not there."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from lanterna.paths import REPO

BOARDS = {p.stem: json.loads(p.read_text()) for p in sorted((REPO / "boards").glob("*.json"))}
CHIP_IDS = {"esp32": 0, "esp32s3": 9}


def image(tmp: Path, chip_id: int, magic: int = 0xE9) -> Path:
    # An ESP image header: magic, segments, flash mode, size/freq, entry (4), then the
    # extended header whose bytes 12-13 name the chip (esptool's image format).
    head = bytes([magic, 3, 2, 0x20]) + bytes(8) + struct.pack("<H", chip_id) + bytes(2)
    p = tmp / f"fw-{chip_id}-{magic}.bin"
    p.write_bytes(head + b"\xff" * 4096)
    return p


def run(lanterna_cmd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*lanterna_cmd, "flash", *args], capture_output=True, text=True)


@pytest.mark.parametrize("name", [n for n, b in BOARDS.items() if b.get("esptool")])
def test_the_command_per_board(lanterna_cmd, tmp_path, name):
    spec = BOARDS[name]["esptool"]
    img = image(tmp_path, CHIP_IDS[spec["chip"]])
    p = run(
        lanterna_cmd,
        "--port",
        "/dev/ttyUSB0",
        "--board",
        name,
        "--image",
        str(img),
        "--dry-run",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    argv = json.loads(p.stdout)["argv"]
    assert Path(argv[0]).name == "esptool"
    assert argv[1:] == [
        "--chip",
        spec["chip"],
        "--port",
        "/dev/ttyUSB0",
        "--baud",
        str(spec["baud"]),
        "write-flash",
        "-z",
        hex(spec["offset"]),
        str(img),
    ]
    p = run(
        lanterna_cmd,
        "--port",
        "rfc2217://pole-17:4000",
        "--board",
        name,
        "--image",
        str(img),
        "--dry-run",
        "--erase",
        "--baud",
        "115200",
    )
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert "--erase-all" in line and "--baud 115200" in line and "rfc2217://pole-17:4000" in line


@pytest.mark.parametrize(
    ("board", "chip_id", "magic", "needle"),
    [
        ("esp32-devkitc", 9, 0xE9, "built for esp32s3, the board is an esp32"),
        ("esp32-s3-devkitc-1", 0, 0xE9, "built for esp32, the board is an esp32s3"),
        ("esp32-devkitc", 0, 0x7F, "not an ESP firmware image (starts with 0x7F"),
        ("sim", 0, 0xE9, "board sim: no esptool section"),
        ("no-such-board", 0, 0xE9, "no-such-board"),
    ],
)
def test_refused_before_esptool_runs(lanterna_cmd, tmp_path, board, chip_id, magic, needle):
    p = run(
        lanterna_cmd,
        "--port",
        "/dev/ttyUSB0",
        "--board",
        board,
        "--image",
        str(image(tmp_path, chip_id, magic)),
    )
    assert p.returncode == 4, p.stderr
    assert needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_a_missing_image_is_one_line(lanterna_cmd, tmp_path):
    p = run(
        lanterna_cmd,
        "--port",
        "/dev/ttyUSB0",
        "--board",
        "esp32-devkitc",
        "--image",
        str(tmp_path / "nope.bin"),
    )
    assert p.returncode == 4 and "nope.bin: cannot read it" in p.stderr, p.stderr


def test_an_unreachable_port_fails_with_one_line(lanterna_cmd, tmp_path):
    # esptool itself runs and cannot open the port: its reason, in one line of ours.
    p = run(
        lanterna_cmd,
        "--port",
        str(tmp_path / "ttyNOPE"),
        "--board",
        "esp32-devkitc",
        "--image",
        str(image(tmp_path, 0)),
    )
    assert p.returncode == 1, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "ttyNOPE" in errors[0] and "Could not open" in errors[0], p.stderr

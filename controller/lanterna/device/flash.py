"""Write MicroPython's base firmware to a board with esptool (`lanterna flash`).

The image is a file the engineer brings (MicroPython's release for the board's chip):
nothing is downloaded at run time. The board file says which chip, at which offset and
how fast (`esptool` in boards/*.json, docs/boards.md). Before esptool touches the port,
the image is checked: an ESP image starts with the magic byte 0xE9 and names, in its
extended header, the chip it was built for; an image for another chip is refused.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lanterna.paths import tool

ESP_MAGIC = 0xE9
# The chip id in an ESP image's extended header (byte 12, little-endian 16 bits), as
# Espressif's bootloader and esptool define them.
CHIP_IDS = {
    "esp32": 0x0000,
    "esp32s2": 0x0002,
    "esp32c3": 0x0005,
    "esp32s3": 0x0009,
    "esp32c2": 0x000C,
    "esp32c6": 0x000D,
    "esp32h2": 0x0010,
    "esp32p4": 0x0012,
}


class FlashError(Exception):
    """One line for the engineer: the board, the image or the port."""


@dataclass
class Plan:
    argv: list[str]
    chip: str
    offset: int
    image: Path

    @property
    def shell(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)


def check_image(image: Path, chip: str) -> None:
    try:
        head = image.read_bytes()[:16]
    except OSError as e:
        raise FlashError(f"{image}: cannot read it: {e.strerror or e}") from None
    if len(head) < 16 or head[0] != ESP_MAGIC:
        got = f"0x{head[0]:02X}" if head else "nothing"
        raise FlashError(f"{image}: not an ESP firmware image (starts with {got}, not 0xE9)")
    image_chip = int.from_bytes(head[12:14], "little")
    want = CHIP_IDS.get(chip)
    if want is not None and image_chip != want:
        names = {v: k for k, v in CHIP_IDS.items()}
        built = names.get(image_chip, f"chip id {image_chip}")
        raise FlashError(f"{image}: built for {built}, the board is an {chip}")


def plan(board: dict, port: str, image: Path, erase: bool = False, baud: int | None = None) -> Plan:
    """The esptool command for `board`; FlashError if the board cannot be flashed or the
    image is not for its chip."""
    spec = board.get("esptool")
    if not spec:
        raise FlashError(f"board {board['name']}: no esptool section (a virtual board?)")
    check_image(image, spec["chip"])
    exe = tool("esptool") or "esptool"
    argv = [exe, "--chip", spec["chip"], "--port", port, "--baud", str(baud or spec["baud"])]
    argv += ["write-flash", "-z"]
    if erase:
        argv.append("--erase-all")
    argv += [f"0x{spec['offset']:x}", str(image)]
    return Plan(argv, spec["chip"], spec["offset"], image)


def run(p: Plan) -> None:
    """Run esptool, its progress on the terminal; FlashError with its last error line."""
    if tool("esptool") is None:
        raise FlashError("esptool is not installed (pip install esptool)")
    proc = subprocess.run(p.argv, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "error" in ln.lower()), None)
        if why:
            why = why.replace("ERROR: ", "").replace("A fatal error occurred: ", "")
        raise FlashError(
            f"esptool failed on {p.argv[p.argv.index('--port') + 1]}: "
            + (why or (lines[-1] if lines else f"exit status {proc.returncode}"))
        )

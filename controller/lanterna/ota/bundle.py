"""Signed OTA bundles: the fleet signing key, building a bundle, reading one back.

A bundle is what a pole installs into its inactive application slot: ``main.py`` and
the ROMFS image of the compiled ``lamp`` package, described by a manifest that the fleet
key signs (docs/ota.md, "Bundle format"). The node parses the tar by hand, 512-byte
ustar headers and nothing else, and verifies the signature with the modulus alone
(RSA-3072, PKCS#1 v1.5, SHA-256: one ``pow(s, 65537, n)``), so this module writes
exactly that subset and reads bundles back as strictly as the node does: the rollout
code reuses `read_bundle`.

The private key never leaves the controller's home; it is created 0600 and never shown.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lanterna.device import firmware as fw
from lanterna.files import write_atomic
from lanterna.ota.keys import (  # noqa: F401 -- the key API, re-exported for the CLI
    ALG,
    KEY_BITS,
    PRIVATE_NAME,
    PUBLIC_NAME,
    SIG_BYTES,
    E,
    KeyExists,
    KeyFileError,
    KeyMissing,
    OtaError,
    PublicKey,
    key_id,
    keygen,
    load_private,
    load_public,
    verify,
)
from lanterna.paths import boards_dir

FORMAT = "lanterna-ota/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SLOT = "slot/"
PAYLOAD = ("main.py", fw.ROMFS_NAME)  # in manifest and tar order; boot.py stays on the node
MANIFEST_KEYS = {"format", "version", "min_version", "boards", "created", "alg", "key_id"}
MANIFEST_KEYS |= {"files", "size"}

_BLOCK = 512
_ZERO = bytes(_BLOCK)
_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_VERSION_LINE = re.compile(r'^VERSION = "[^"\n]*"$', re.MULTILINE)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


class BundleError(OtaError):
    """The bundle is malformed or has been tampered with; the message names the member."""


class BadInput(OtaError):
    """A version string, board name or firmware tree the build cannot use."""


# -- building ----------------------------------------------------------------------------


def check_version(option: str, value: str) -> str:
    if not _VERSION.fullmatch(value):
        raise BadInput(f"{option} {value!r}: expected X.Y.Z, three non-negative integers")
    return value


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def known_boards() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.json"))


def check_boards(boards: list[str] | tuple[str, ...]) -> list[str]:
    """The boards a bundle is for, sorted; empty: every board of the project."""
    known = known_boards()
    for b in boards:
        if b not in known:
            raise BadInput(f"--board {b!r}: no such board (known: {', '.join(known)})")
    return sorted(set(boards)) if boards else known


def board_manifests(boards: list[str]) -> list[str]:
    """The firmware manifests the boards' chips run (docs/firmware.md, "Manifests"): a
    bundle holds their union, so an ESP32-only bundle carries no simulator code."""
    out = set()
    for b in boards:
        try:
            chip = json.loads((boards_dir() / f"{b}.json").read_text())["chip"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BadInput(f"board {b}: no chip in its board file ({e})") from None
        out.add(fw.manifest_for_chip(chip))
    return sorted(out)


def _firmware_at(src: Path, version: str, dest: Path) -> Path:
    # The firmware reports lamp.VERSION, so the bundle's version goes into a copy of the
    # tree: what a node says it runs is what the manifest says it got.
    tree = dest / "src"
    shutil.copytree(src, tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    init = tree / "lamp" / "__init__.py"
    text = init.read_text() if init.is_file() else ""
    text, found = _VERSION_LINE.subn(f'VERSION = "{version}"', text)
    if found != 1:
        raise BadInput(f"{src}: expected one line 'VERSION = \"...\"' in lamp/__init__.py")
    init.write_text(text)
    if not (tree / "main.py").is_file():
        raise BadInput(f"{src}: no main.py (the firmware's entry point)")
    return tree


def _ustar(name: str, data: bytes, mtime: int) -> bytes:
    # Plain ustar, no pax or GNU records: the node reads fixed 512-byte headers.
    if len(name.encode()) >= 100:
        raise BadInput(f"{name}: a member name must be under 100 bytes")
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime, ti.type = len(data), 0o644, mtime, tarfile.REGTYPE
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    header = ti.tobuf(tarfile.USTAR_FORMAT, "ascii", "strict")
    return header + data + bytes(-len(data) % _BLOCK)


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def pack(manifest: dict[str, Any], key: rsa.RSAPrivateKey, files: dict[str, bytes]) -> bytes:
    """The bundle's bytes: manifest, its signature, the payload in manifest order."""
    mbytes = manifest_bytes(manifest)
    sig = key.sign(mbytes, padding.PKCS1v15(), hashes.SHA256())
    mtime = calendar.timegm(time.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%SZ"))
    parts = [_ustar(MANIFEST, mbytes, mtime), _ustar(SIGNATURE, sig, mtime)]
    parts += [_ustar(SLOT + f["path"], files[f["path"]], mtime) for f in manifest["files"]]
    return b"".join(parts) + _ZERO * 2  # end of archive; no padding to a 10 KB record


@dataclass(frozen=True)
class Built:
    path: Path
    manifest: dict[str, Any]
    bytes: int


def build(
    src: Path,
    out: Path,
    version: str,
    key: rsa.RSAPrivateKey,
    min_version: str | None = None,
    boards: list[str] | tuple[str, ...] = (),
    created: int | None = None,
) -> Built:
    """Compile `src` as `version`, sign, and write the bundle to `out` atomically.

    Raises BadInput, fw.FirmwareBuildError (mpy-cross's message); on any failure `out`
    is left as it was.
    """
    check_version("--version", version)
    if min_version is not None:
        check_version("--min-version", min_version)
        if version_tuple(min_version) > version_tuple(version):
            raise BadInput(f"--min-version {min_version} is above --version {version}")
    board_list = check_boards(boards)
    t = int(time.time()) if created is None else created
    with tempfile.TemporaryDirectory(prefix="lanterna-ota-") as tmp:
        tree = _firmware_at(src, version, Path(tmp))
        fw.build(Path(tmp) / "fw", tree, board_manifests(board_list))
        files = {
            "main.py": (Path(tmp) / "fw" / "main.py").read_bytes(),
            fw.ROMFS_NAME: fw.app_image(Path(tmp) / "fw"),
        }
    manifest = {
        "format": FORMAT,
        "version": version,
        "min_version": min_version,
        "boards": board_list,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
        "alg": ALG,
        "key_id": key_id(key.public_key().public_numbers().n),
        "files": [
            {"path": p, "size": len(files[p]), "sha256": hashlib.sha256(files[p]).hexdigest()}
            for p in PAYLOAD
        ],
        "size": sum(len(b) for b in files.values()),
    }
    data = pack(manifest, key, files)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, data, 0o644)  # signed, not secret; a failed build leaves no bundle
    return Built(out, manifest, len(data))


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    manifest_bytes: bytes
    sig: bytes
    files: dict[str, bytes]  # payload path (no slot/ prefix) -> bytes, in manifest order
    bytes: int
    key_id: str | None  # the key whose signature verified; None: signature not checked


def _octal(field: bytes, what: str) -> int:
    s = field.rstrip(b"\0 ").lstrip(b" ")
    if not re.fullmatch(rb"[0-7]+", s):
        raise BundleError(f"not a bundle: {what} is not an octal number")
    return int(s, 8)


def members(data: bytes) -> list[tuple[str, bytes]]:
    """The (name, bytes) of every member of a strict ustar stream, as the node reads it."""
    out: list[tuple[str, bytes]] = []
    pos = 0
    while True:
        n = len(out) + 1
        h = data[pos : pos + _BLOCK]
        if len(h) < _BLOCK:
            if pos == 0:
                raise BundleError("not a bundle: shorter than one tar header")
            raise BundleError(
                "truncated: no end-of-archive marker" if not h else f"truncated: in member {n}"
            )
        if h == _ZERO:
            if data[pos + _BLOCK : pos + 2 * _BLOCK] != _ZERO:
                raise BundleError("truncated: the end-of-archive marker is cut short")
            if any(data[pos + 2 * _BLOCK :]):
                raise BundleError("not a bundle: data after the end-of-archive marker")
            return out
        if h[257:263] != b"ustar\0" or h[263:265] != b"00":
            raise BundleError(f"not a bundle: member {n} has no ustar header")
        stored = _octal(h[148:156], f"member {n}'s header checksum")
        if stored != sum(h[:148]) + 8 * 32 + sum(h[156:]):
            raise BundleError(f"not a bundle: member {n}'s header checksum does not match")
        try:
            name = h[:100].split(b"\0", 1)[0].decode("ascii")
        except UnicodeDecodeError:
            raise BundleError(f"not a bundle: member {n}'s name is not ASCII") from None
        if h[156:157] != b"0":
            raise BundleError(f"not a bundle: member {n} {name!r} is not a regular file")
        if any(h[345:500]):
            raise BundleError(f"not a bundle: member {n} {name!r} uses a name prefix")
        size = _octal(h[124:136], f"the size of member {n} {name!r}")
        start = pos + _BLOCK
        if start + size > len(data):
            raise BundleError(
                f"truncated: {name} needs {size} bytes, {max(0, len(data) - start)} left"
            )
        out.append((name, data[start : start + size]))
        pos = start + size + (-size % _BLOCK)


def _want(ms: list[tuple[str, bytes]], i: int, name: str) -> bytes:
    if i >= len(ms):
        raise BundleError(f"not a bundle: member {i + 1} is missing, expected {name}")
    if ms[i][0] != name:
        raise BundleError(f"not a bundle: member {i + 1} is {ms[i][0]!r}, expected {name}")
    return ms[i][1]


def parse_manifest(mbytes: bytes) -> dict[str, Any]:
    """The manifest, every field checked; BundleError names the field."""

    def bad(why: str) -> BundleError:
        return BundleError(f"{MANIFEST}: {why}")

    try:
        m = json.loads(mbytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("not UTF-8 JSON") from None
    if not isinstance(m, dict):
        raise bad("not a JSON object")
    if set(m) != MANIFEST_KEYS:
        raise bad(f"expected the fields {', '.join(sorted(MANIFEST_KEYS))}")
    if m["format"] != FORMAT:
        raise bad(f"format {m['format']!r}, expected {FORMAT!r}")
    if m["alg"] != ALG:
        raise bad(f"alg {m['alg']!r}, expected {ALG!r}")
    for k in ("version", "min_version"):
        v = m[k]
        if not (isinstance(v, str) and _VERSION.fullmatch(v)) and not (
            k != "version" and v is None
        ):
            raise bad(f"{k} {v!r} is not X.Y.Z")
    boards = m["boards"]
    if not isinstance(boards, list) or not boards or not all(isinstance(b, str) for b in boards):
        raise bad("boards must be a non-empty list of names")
    if not (isinstance(m["created"], str) and _CREATED.fullmatch(m["created"])):
        raise bad(f"created {m['created']!r} is not YYYY-MM-DDTHH:MM:SSZ")
    if not (isinstance(m["key_id"], str) and re.fullmatch(r"[0-9a-f]{16}", m["key_id"])):
        raise bad("key_id must be 16 hex digits")
    files = m["files"]
    if not isinstance(files, list) or [
        f.get("path") if isinstance(f, dict) else None for f in files
    ] != list(PAYLOAD):
        raise bad(f"files must be {', '.join(PAYLOAD)}, in that order")
    for f in files:
        size, digest = f.get("size"), f.get("sha256")
        ok_size = isinstance(size, int) and not isinstance(size, bool) and size >= 0
        if (
            set(f) != {"path", "size", "sha256"}
            or not ok_size
            or not (isinstance(digest, str) and _SHA256.fullmatch(digest))
        ):
            raise bad(f"file {f['path']}: expected path, size (bytes) and sha256 (hex)")
    if m["size"] != sum(f["size"] for f in files):
        raise bad(f"size {m['size']!r} is not the sum of the file sizes")
    return m


def read_bundle(path: Path, pub: PublicKey | None) -> Bundle:
    """Parse and check a bundle; BundleError says exactly what is wrong.

    The signature is checked (with `pub`) before anything in the manifest is trusted,
    then every member against it. `pub` None skips the signature only (key_id None).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BundleError(f"{path}: cannot read it: {e.strerror or e}") from None
    ms = members(data)
    mbytes = _want(ms, 0, MANIFEST)
    sig = _want(ms, 1, SIGNATURE)
    if len(sig) != SIG_BYTES:
        raise BundleError(f"{SIGNATURE}: {len(sig)} bytes, expected {SIG_BYTES}")
    if pub is not None and not verify(pub, mbytes, sig):
        hint = "manifest.json or its signature was altered"
        try:
            named = json.loads(mbytes)["key_id"]
            if named != pub.key_id:
                hint = f"the bundle names key {named}"
        except (ValueError, KeyError, TypeError):
            pass
        raise BundleError(f"{SIGNATURE}: signature does not verify with key {pub.key_id} ({hint})")
    m = parse_manifest(mbytes)
    if pub is not None and m["key_id"] != pub.key_id:
        raise BundleError(f"{MANIFEST}: names key {m['key_id']}, signed by key {pub.key_id}")
    files: dict[str, bytes] = {}
    for i, f in enumerate(m["files"], start=2):
        name = SLOT + f["path"]
        body = _want(ms, i, name)
        if len(body) != f["size"]:
            raise BundleError(f"{name}: {len(body)} bytes, the manifest says {f['size']}")
        if hashlib.sha256(body).hexdigest() != f["sha256"]:
            raise BundleError(f"{name}: sha256 mismatch")
        files[f["path"]] = body
    if len(ms) > 2 + len(files):
        extra = 3 + len(files)
        raise BundleError(f"not a bundle: extra member {extra} {ms[extra - 1][0]!r}")
    return Bundle(m, mbytes, sig, files, len(data), None if pub is None else pub.key_id)

# The signed manifest of a bundle (docs/ota.md, "Bundle format"): every field checked as
# lanterna.ota.bundle.parse_manifest checks it, before anything of the bundle is written.
# lamp.ota.install calls check() once manifest.sig verifies.
import json

from lamp.ota import (
    R_UNSUPPORTED,
    OtaError,
)

FORMAT = "lanterna-ota/1"
ALG = "rsa3072-pkcs1v15-sha256"
PAYLOAD = ("main.py", "lanterna.romfs")
_KEYS = ("alg", "boards", "created", "files", "format", "key_id", "min_version", "size", "version")
_CREATED = "dddd-dd-ddTdd:dd:ddZ"


def version(s):
    # "X.Y.Z", no leading zeros -> (X, Y, Z); anything else -> None
    if not isinstance(s, str):
        return None
    p = s.split(".")
    if len(p) != 3:
        return None
    for x in p:
        if not x.isdigit() or (x[0] == "0" and len(x) > 1):
            return None
    return (int(p[0]), int(p[1]), int(p[2]))


def is_hex(s, n):
    return isinstance(s, str) and len(s) == n and all(c in "0123456789abcdef" for c in s)


def check(mb):
    # The signed manifest, every field as docs/ota.md has it (lanterna.ota_bundle.
    # parse_manifest reads the same); OtaError(R_UNSUPPORTED) names the field.
    try:
        m = json.loads(mb)
    except (ValueError, UnicodeError):
        m = None
    why = None
    if not isinstance(m, dict) or len(m) != len(_KEYS) or any(k not in m for k in _KEYS):
        why = "expected the fields " + ", ".join(_KEYS)
    elif m["format"] != FORMAT:
        why = "format %r, expected %r" % (m["format"], FORMAT)
    elif m["alg"] != ALG:
        why = "alg %r, expected %r" % (m["alg"], ALG)
    elif version(m["version"]) is None:
        why = "version %r is not X.Y.Z" % (m["version"],)
    elif m["min_version"] is not None and version(m["min_version"]) is None:
        why = "min_version %r is not X.Y.Z" % (m["min_version"],)
    elif not isinstance(m["boards"], list) or not m["boards"]:
        why = "boards must be a non-empty list of names"
    elif any(not isinstance(b, str) for b in m["boards"]):
        why = "boards must be a non-empty list of names"
    elif not _is_created(m["created"]):
        why = "created %r is not YYYY-MM-DDTHH:MM:SSZ" % (m["created"],)
    elif not is_hex(m["key_id"], 16):
        why = "key_id must be 16 hex digits"
    else:
        why = _files_problem(m["files"], m["size"])
    if why:
        raise OtaError(R_UNSUPPORTED, "manifest.json: " + why)
    return m


def _is_created(s):
    if not isinstance(s, str) or len(s) != len(_CREATED):
        return False
    for i in range(len(s)):
        t = _CREATED[i]
        if not (s[i] in "0123456789" if t == "d" else s[i] == t):
            return False
    return True


def _files_problem(files, size):
    if not isinstance(files, list) or len(files) != len(PAYLOAD):
        return "files must be %s, in that order" % ", ".join(PAYLOAD)
    total = 0
    for i in range(len(files)):
        f, path = files[i], PAYLOAD[i]
        if not isinstance(f, dict) or f.get("path") != path:
            return "files must be %s, in that order" % ", ".join(PAYLOAD)
        n = f.get("size")
        # type(): MicroPython's bool is no int subclass, CPython's is; either way not a size
        if len(f) != 3 or type(n) is not int or n < 0 or not is_hex(f.get("sha256"), 64):
            return "file %s: expected path, size (bytes) and sha256 (hex)" % path
        total += n
    if type(size) is not int or size != total:
        return "size %r is not the sum of the file sizes" % (size,)
    return None

"""Files the controller writes whole: created with their mode under a temporary name,
renamed into place (never readable by others for an instant, never half-written)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def landing(
    path: Path, mode: int, put: Callable[[Path, Path], None] = os.replace
) -> Iterator[BinaryIO]:
    """A file to write, under a random temporary name beside `path` and created with
    `mode` from the start; when the block ends it is synced and `put(tmp, path)` puts it
    in place (os.replace, or a link that refuses to clobber). The temporary name never
    outlives the block; an exception in the block leaves `path` as it was."""
    # mkstemp creates the file 0600 with O_EXCL; fchmod only ever widens a public file.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        put(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def land(path: Path, data: bytes, mode: int, put: Callable[[Path, Path], None]) -> None:
    """`data` written whole through `landing`."""
    with landing(path, mode, put) as f:
        f.write(data)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Write `data` to `path` created with `mode` (0600 for secrets) and renamed into
    place; -> False, touching nothing, when the file already holds exactly `data` and
    `mode` (so a re-run changes no file)."""
    try:
        st = path.stat()
        if st.st_mode & 0o777 == mode and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    land(path, data, mode, os.replace)
    return True


def read_json_object(path: Path) -> dict:
    """A JSON object file (config.json); {} when it does not exist; ValueError naming the
    file when it is not a JSON object."""
    if not path.exists():
        return {}
    try:
        c = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a JSON config file: {e}") from None
    if not isinstance(c, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return c

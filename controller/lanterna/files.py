"""Files the controller writes whole: created with their mode under a temporary name,
renamed into place (never readable by others for an instant, never half-written)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
    # mkstemp creates the file 0600 with O_EXCL; fchmod only ever widens a public file.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
    return True

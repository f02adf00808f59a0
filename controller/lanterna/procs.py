"""Child processes that never outlive the lanterna process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1
_SIGTERM = int(signal.SIGTERM)


def _find_prctl() -> Any:
    # Looked up once, in the parent: dlopen and dlsym take the dynamic loader's lock, and
    # a child forked while another thread of the parent held it (asyncio's child watcher
    # threads, a district's supervisor) would wait for it forever in preexec_fn, before
    # exec, and the parent's Popen with it (seen as a virtual board that went silent
    # after a reset under load).
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _find_prctl()


def die_with_parent() -> None:
    """preexec_fn for Popen: the child gets SIGTERM when its parent dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG), so a killed `lanterna node run` or `lanterna sim`
    leaves no virtual node running. Elsewhere, a no-op. It only calls the C function
    found at import: nothing in the forked child takes a lock another thread may hold."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, _SIGTERM)

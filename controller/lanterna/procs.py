"""Child processes that never outlive the lanterna process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn for Popen: the child gets SIGTERM when its parent dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG), so a killed `lanterna node run` or `lanterna sim`
    leaves no virtual node running. Elsewhere, a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass

"""One mpremote session with a board (provisioning, the probe, the commissioning check):
the command's stdout, or one line naming the port when it fails."""

from __future__ import annotations

import subprocess

from lanterna.paths import tool


def run(port: str, *args: str, timeout: float = 120, error: type[Exception] = RuntimeError) -> str:
    """`mpremote connect PORT ARGS...` -> its stdout; `error(message)` when mpremote is
    missing, the device does not answer in `timeout` s, or mpremote fails (its last line)."""
    exe = tool("mpremote")
    if exe is None:
        raise error("mpremote is not installed (pip install mpremote)")
    try:
        p = subprocess.run(
            [exe, "connect", port, *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise error(f"{port}: no answer from the device in {timeout:g} s") from None
    if p.returncode != 0:
        lines = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
        raise error(f"{port}: " + (lines[-1] if lines else "mpremote failed"))
    return p.stdout

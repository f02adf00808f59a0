"""A rollout's plan (docs/ota.md, "Rollouts"): the canary, the waves as cumulative
shares of the nodes, the failure threshold, the health window; and which node goes in
which wave. Pure: no store, no broker, so the CLI checks a plan before anything starts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lanterna.errors import LanternaError

ACTIVE = ("running", "paused")
SETTLED = ("done", "failed", "refused")
IN_FLIGHT = ("offered", "downloading", "installing", "trial")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


class RolloutError(LanternaError):
    """One line for the operator: a bad plan, no such rollout, one already active."""


@dataclass
class Plan:
    canary: str | None = None  # "N" nodes or "P%"
    waves: tuple[float, ...] = (1.0,)  # cumulative shares of the nodes, the last 1.0
    max_failures: float = 0.1  # of the settled nodes; above it the rollout halts
    health_window: float = 60.0  # s between a wave settled and the next one offered
    timeout: float = 900.0  # s from offer to settled, per node
    chunk: int = 1024


def parse_share(text: str, what: str, zero: bool = False) -> float:
    """'10%' -> 0.1; RolloutError naming the option otherwise."""
    m = _PERCENT.match(text.strip())
    if not m or not (0 if zero else 1e-9) <= float(m.group(1)) <= 100:
        raise RolloutError(f"{what}: expected a percentage like 10%, got {text!r}")
    return float(m.group(1)) / 100


def parse_waves(text: str) -> tuple[float, ...]:
    waves = tuple(parse_share(w, "--waves") for w in text.split(","))
    if any(b <= a for a, b in zip(waves, waves[1:], strict=False)) or waves[-1] != 1.0:
        raise RolloutError(f"--waves: rising percentages ending at 100%, got {text!r}")
    return waves


def check_canary(text: str | None) -> str | None:
    if text is None:
        return None
    if text.isdigit() and int(text) > 0:
        return text
    parse_share(text, "--canary")
    return text


def assign_waves(nodes: Sequence[str], plan: Plan) -> dict[str, int]:
    """node -> wave: wave 0 the canary (when there is one), then the waves' cumulative
    shares of all the nodes, in node order (so a rerun assigns the same way)."""
    ordered = sorted(nodes)
    total = len(ordered)
    out: dict[str, int] = {}
    done = 0
    wave = 0
    if plan.canary:
        c = plan.canary
        n = int(c) if c.isdigit() else math.ceil(parse_share(c, "--canary") * total)
        for node in ordered[: min(max(n, 1), total)]:
            out[node] = 0
        done = len(out)
        wave = 1
    for share in plan.waves:
        upto = max(done, math.ceil(share * total))
        if upto > done:
            for node in ordered[done:upto]:
                out[node] = wave
            done = upto
            wave += 1
    return out

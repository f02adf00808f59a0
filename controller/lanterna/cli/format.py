"""How the fleet commands show nodes: times, ages, cells, the status table, and the one
way every view narrows the fleet (--site, --group, --node)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lanterna.cli.output import table
from lanterna.store import Node, Store


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(seconds: float) -> str:
    """A short age for a person: 12s, 5m, 3h, 2d (ago)."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _cell(v: Any, fmt: str = "") -> str:
    return "-" if v is None or v == [] else format(v, fmt)


def _select(store: Store, site: str | None, group: str | None, ids: Sequence[str]) -> list[Node]:
    return store.nodes(site=site, group=group, ids=list(ids) or None)


def _status_json(s: dict[str, Any]) -> dict[str, Any]:
    return dict(s, last_seen=iso(s["last_seen"]), last_seen_epoch=s["last_seen"])


def _yes_no(online: bool | None) -> str:
    return "?" if online is None else "yes" if online else "no"


def _status_table(status: list[dict[str, Any]]) -> str:
    import time

    now = time.time()
    rows = [
        (
            s["node"],
            s["site"],
            _yes_no(s["online"]),
            _cell(s["level"]),
            _cell(s["mode"]),
            _cell(s["firmware"]),
            "never" if s["last_seen"] is None else age(now - s["last_seen"]),
            ", ".join(s["faults"]) or "-",
        )
        for s in status
    ]
    headers = ("node", "site", "online", "level", "mode", "firmware", "last seen", "faults")
    return table(headers, rows, right=(3,))

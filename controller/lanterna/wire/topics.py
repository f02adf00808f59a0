"""The MQTT topic tree (docs/protocol.md, "Topics"): ``{prefix}/{site}/{node}/{leaf}``.

The default prefix is written here once; the node's own copy is lamp.numbers.PREFIX, and
a test holds the two equal.
"""

from __future__ import annotations

PREFIX = "lanterna/v1"

# Leaves a node publishes, and the ones it subscribes to.
STATUS, STATE, TELE, EVENT, ACK = "status", "state", "tele", "event", "ack"
CMD, OTA_REQ, OTA_DATA = "cmd", "ota/req", "ota/data"


def base(prefix: str = PREFIX) -> str:
    """The prefix with exactly one trailing slash."""
    return prefix.rstrip("/") + "/"


def node_topic(prefix: str, site: str, node: str, leaf: str) -> str:
    return f"{base(prefix)}{site}/{node}/{leaf}"


def fleet_filter(prefix: str, leaf: str = "#", site: str = "+") -> str:
    """A subscription to one leaf (or all) of every node of a site (or of every site)."""
    return f"{base(prefix)}{site}/+/{leaf}"

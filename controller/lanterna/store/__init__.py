"""The controller's store: the fleet, what it said and what was done to it.

``db`` holds the connection (SQLite in WAL mode, one file), its transactions and every
query; ``migrations`` the numbered schema they run first. Everything the controller
keeps goes through ``Store``; the fleet, OTA and views modules never write SQL of their
own against another file.
"""

from lanterna.store.db import (
    DB_NAME,
    Node,
    Store,
    StoreError,
    UnknownGroup,
    UnknownNode,
    default_path,
)

__all__ = ["DB_NAME", "Node", "Store", "StoreError", "UnknownGroup", "UnknownNode", "default_path"]

"""The store's exceptions (one module, so both backends' code raises the same ones)."""

from __future__ import annotations

from lanterna.errors import EXIT_STORE, EXIT_UNKNOWN, LanternaError


class StoreError(LanternaError):
    """A store that cannot be opened or an operation that names what does not exist."""

    exit_code = EXIT_STORE


class UnknownNode(StoreError):
    exit_code = EXIT_UNKNOWN


class UnknownGroup(StoreError):
    exit_code = EXIT_UNKNOWN


class PgError(StoreError):
    """A PostgreSQL error, with its SQLSTATE; the message names the database by its URL
    without the password."""

    def __init__(self, msg: str, sqlstate: str | None = None) -> None:
        super().__init__(msg)
        self.sqlstate = sqlstate

"""Errors that know the exit status they end the CLI with (docs/cli.md, "Exit statuses").

The library raises them; only the CLI turns one into a line on stderr and a status, so a
library caller (the web console, a test) sees a plain exception with an ``exit_code``.
"""

from __future__ import annotations

EXIT_FAILED = 1  # a node failed or did not answer
EXIT_USAGE = 2  # click's own
EXIT_UNKNOWN = 3  # unknown node, group or site
EXIT_MALFORMED = 4  # malformed input: a file, an option's value, a board, a bundle
EXIT_BROKER = 5  # broker unreachable or refused
EXIT_STORE = 6  # store error


class LanternaError(Exception):
    """One clear line and a distinct exit status; subclasses set their own default."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.exit_code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class Malformed(LanternaError):
    exit_code = EXIT_MALFORMED


class Unknown(LanternaError):
    exit_code = EXIT_UNKNOWN


def unknown(e: Exception) -> LanternaError:
    return Unknown(str(e))


def malformed(message: str) -> LanternaError:
    return Malformed(message)

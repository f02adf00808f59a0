"""Board files by name or path, loaded and checked by the node's own lamp.board.

A board file that is missing or wrong is malformed input (exit 4) whose message names
the file and the key; the same check runs on the pole at boot.
"""

from __future__ import annotations

from lanterna.errors import Malformed
from lanterna.paths import board_file


class BoardFileError(Malformed):
    pass


def load_board(name_or_path: str) -> dict:
    from lamp.board import BoardError, load

    try:
        return load(str(board_file(name_or_path)))
    except BoardError as e:
        raise BoardFileError(str(e)) from None

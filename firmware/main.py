# Entry point. On the pole MicroPython runs it after boot.py with no arguments (board.json
# and config.json from flash); on the unix port the arguments name the board and config.
import sys

# Everything the running node keeps is imported first, into a clean heap, so that the
# one-off boot work after it (board and config checks, the TZ parser, the schedule
# validator, all unloaded again) leaves its holes above the long-lived code, not in it:
# fragmentation, not size, is what ends a MicroPython heap.
import lamp.app  # noqa: F401
import lamp.schedule  # noqa: F401
from lamp import start, unload

node = start.boot(sys.argv[1:])
del start
unload("start")
if isinstance(node, int):
    sys.exit(node)
node.start()

# Entry point. On the pole MicroPython runs it after boot.py with no arguments (board.json
# and config.json from flash); on the unix port the arguments name the board and config.
import gc
import sys

# Collect after every 8 KB allocated instead of when the heap is full: garbage then never
# sits between long-lived objects for long, so the heap stays in large free blocks. On the
# unix port this lowered the least heap the node boots and runs in from 104K to 88K.
gc.threshold(8192)

# Everything the running node keeps is imported first, into a clean heap, so that the
# one-off boot work after it (board and config checks, the TZ parser, the schedule
# validator, all unloaded again) leaves its holes above the long-lived code, not in it:
# fragmentation, not size, is what ends a MicroPython heap.
from asyncio import wait_for_ms  # noqa: F401 -- asyncio imports it lazily

import lamp.app  # noqa: F401
import lamp.schedule  # noqa: F401

if sys.platform == "esp32":
    import lamp.hal.esp32  # noqa: F401
else:
    import lamp.hal.sim  # noqa: F401
from lamp import start, unload

node = start.boot(sys.argv[1:])
del start
unload("start")
if isinstance(node, int):
    sys.exit(node)
node.start()

# Executed by the MicroPython interpreter (not CPython): import one firmware test file and
# run one test function; async tests run under asyncio. Exit status 0 only on success.
# The firmware and the test files come from a ROMFS image mounted first (romboot).
import gc
import os
import sys

import romboot

romboot.mount(os.getenv("LANTERNA_ROMFS"))
del romboot
sys.modules.pop("romboot")
gc.threshold(8192)  # as firmware/main.py sets it on the node
path, name = sys.argv[1], sys.argv[2]
modname = path.rsplit("/", 1)[-1][:-3]
try:
    mod = __import__(modname)
    fn = getattr(mod, name)
    gc.collect()
    result = fn()
    if result is not None and hasattr(result, "send"):  # coroutine
        import asyncio

        asyncio.run(result)
except Exception as e:  # noqa: BLE001 -- report whatever the test raised
    sys.print_exception(e)
    sys.exit(1)
gc.collect()
print("MPRUNNER-PASS %s heap_alloc=%d heap_free=%d" % (name, gc.mem_alloc(), gc.mem_free()))

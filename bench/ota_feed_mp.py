# The node's own work in a download, without the network (run by bench/bench_ota_rollout.py
# in the real MicroPython, lamp from firmware/ on MICROPYPATH): a bundle fed to
# lamp.ota.install's Install chunk by chunk, each chunk a fresh bytes object with the
# 4-byte offset in front and fed as a memoryview past it, as lamp.ota.fetch gets it from
# the MQTT client; the flash is a directory. Prints FEED-OK and, with timing, the time
# per chunk (median, the slowest: the one that ends the signature, which is checked then),
# and finish() (every file hashed again from flash).
# Run: micropython -X heapsize=N ota_feed_mp.py ROOT/ BUNDLE KEY_FILE CHUNK TIMING(0|1)
# (KEY_FILE: the modulus in hex; this port crashes on a 768-character argument)
import gc
import json
import sys
import time
from binascii import unhexlify

root, path, keyfile, chunk, timing = sys.argv[1:6]
chunk, timing = int(chunk), timing == "1"
with open(keyfile) as kf:
    key = kf.read().strip()

import os  # noqa: E402

os.mkdir(root + "slots")
os.mkdir(root + "slots/a")
os.mkdir(root + "slots/b")

from lamp.ota.install import Install  # noqa: E402

inst = Install(root, unhexlify(key), "0.1.0", "sim", None)
times = []
f = open(path, "rb")
gc.collect()
t_all = time.ticks_us()
while True:
    b = f.read(chunk)
    if not b:
        break
    got = b"\0\0\0\0" + b  # the chunk as delivered, offset first
    b = None
    t = time.ticks_us()
    inst.feed(memoryview(got)[4:])
    got = None
    if timing:
        times.append(time.ticks_diff(time.ticks_us(), t))
t = time.ticks_us()
inst.finish()
t_fin = time.ticks_diff(time.ticks_us(), t)
t_all = time.ticks_diff(time.ticks_us(), t_all)
out = {"chunks": len(times)}
if timing:
    s = sorted(times)
    out["feed_ms_median"] = s[len(s) // 2] / 1000
    out["feed_ms_max"] = s[-1] / 1000
    out["feed_s_total"] = sum(times) / 1e6
    out["finish_s"] = t_fin / 1e6
    out["all_s"] = t_all / 1e6
print("FEED-OK", json.dumps(out))

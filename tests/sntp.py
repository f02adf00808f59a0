"""A real SNTP responder on 127.0.0.1 for tests (RFC 4330), with fault behaviours."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

DELTA = 2208988800
# The responder's time: far from the host's clock, so a pass proves the client used it.
SERVER_UTC = 1950000000  # 2031-10-25
Reply = Callable[[bytes], bytes | None]


def good(req: bytes, xmit: int = SERVER_UTC + DELTA, **kw) -> bytes:
    fields = {"b0": 0x24, "stratum": 1, "orig": req[40:48], "xmit": xmit}
    fields.update(kw)
    return struct.pack(
        "!BBbbII4sII8sIIII",
        fields["b0"],
        fields["stratum"],
        6,
        -20,
        0,
        0,
        b"GPS\0",
        xmit & 0xFFFFFFFF,
        0,
        fields["orig"],
        xmit & 0xFFFFFFFF,
        0,
        xmit & 0xFFFFFFFF,
        0x40000000 if xmit else 0,  # .25 s
    )


class Responder:
    """A UDP SNTP responder on a thread; `behaviour` makes each reply (None: stay silent)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)  # lets stop() end the loop; not used to synchronise
        self.port = self.sock.getsockname()[1]
        self.behaviour: Reply = good
        self.requests: list[bytes] = []
        self.got_request = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            self.requests.append(data)
            self.got_request.set()
            out = self.behaviour(data)
            if out is not None:
                self.sock.sendto(out, addr)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

"""lamp.net.ntp in MicroPython against a real SNTP responder on 127.0.0.1 (run in CPython).

The responder answers from a table of behaviours (good, garbage, short, wrong mode, ...);
the MicroPython side is tests/firmware/test_ntp.py's sntp_* functions.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from sntp import DELTA, SERVER_UTC, Reply, good

from mpharness import run_firmware

FW_TEST = Path(__file__).parent / "firmware" / "test_ntp.py"


def run_mp(func: str, port: int, timeout_ms: int = 2000) -> str:
    proc = run_firmware(
        FW_TEST, func, extra_env={"NTP_PORT": str(port), "NTP_TIMEOUT_MS": str(timeout_ms)}
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "MPRUNNER-PASS" in proc.stdout, out
    return out


def result(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("NTP-RESULT"))


def test_client_takes_the_time_from_the_server(responder):
    out = result(run_mp("sntp_query", responder.port))
    assert out.startswith("NTP-RESULT ok"), out
    fields = dict(f.split("=") for f in out.split()[2:])
    # T3 = SERVER_UTC + .25 s, plus half the (loopback) round trip.
    assert SERVER_UTC <= int(fields["utc"]) <= SERVER_UTC + 1
    assert fields["stratum"] == "1"
    (req,) = responder.requests
    assert len(req) == 48 and req[0] == 0x23  # LI 0, VN 4, mode 3 (client)


def test_client_handles_era_one_after_2036(responder):
    utc_2040 = 2208988800
    responder.behaviour = lambda req: good(req, xmit=utc_2040 + DELTA)
    out = result(run_mp("sntp_query", responder.port))
    assert f"utc={utc_2040} " in out or f"utc={utc_2040 + 1} " in out, out


BAD: dict[str, tuple[Reply, str]] = {
    "garbage": (lambda req: b"\x07" + os.urandom(47), "mode 7"),
    "random": (lambda req: bytes([0x24, 1]) + os.urandom(46), "originate"),
    "short": (lambda req: good(req)[:20], "short reply (20 bytes)"),
    "empty": (lambda req: b"", "short reply (0 bytes)"),
    "wrong_mode": (lambda req: good(req, b0=0x23), "mode 3"),
    "unsynchronised": (lambda req: good(req, b0=0xE4), "LI 3"),
    "stratum_16": (lambda req: good(req, stratum=16), "stratum 16"),
    "kiss_of_death": (lambda req: good(req, stratum=0)[:12] + b"DENY" + good(req)[16:], "DENY"),
    "bad_echo": (lambda req: good(req, orig=bytes(8)), "originate"),
    "zero_transmit": (lambda req: good(req, xmit=0), "zero transmit"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_reply_is_an_error_not_a_crash(responder, case):
    responder.behaviour, why = BAD[case]
    out = result(run_mp("sntp_query", responder.port))
    assert out.startswith("NTP-RESULT error") and why in out, out
    assert responder.got_request.is_set()


def test_silent_server_times_out(responder):
    responder.behaviour = lambda req: None
    out = result(run_mp("sntp_query", responder.port, timeout_ms=300))
    assert "NTP-RESULT error no reply" in out and "within 300 ms" in out, out
    assert responder.got_request.is_set()


def test_closed_port_is_an_error_not_a_crash():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: ICMP port unreachable -> ECONNREFUSED
    out = result(run_mp("sntp_query", port, timeout_ms=1000))
    assert out.startswith("NTP-RESULT error"), out


def test_sync_sets_the_clock_and_the_rtc_chip(responder):
    out = run_mp("sntp_sync", responder.port)
    line = next(x for x in out.splitlines() if x.startswith("NTP-SYNC"))
    now, chip = (int(f.split("=")[1]) for f in line.split()[1:])
    assert SERVER_UTC <= now <= SERVER_UTC + 1 and chip == now

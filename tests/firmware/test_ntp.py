# lamp.net.ntp: packet building and reply checks (RFC 4330 sec. 5) run here in MicroPython;
# the exchanges with a real UDP responder are driven by tests/test_ntp_client.py, which
# starts the responder in CPython and calls the sntp_* functions below (not collected:
# no test_ prefix) with its port in $NTP_PORT.
import os
import struct

from fw import raises
from lamp import clock, rtc
from lamp.hal.simdev import rtc_model
from lamp.net import ntp

DELTA = 2208988800
T = 1795600000


def reply(sent, xmit=T + DELTA, b0=0x24, stratum=2, recv=None, frac=0):
    # A server reply (LI 0, VN 4, mode 4 by default) echoing `sent` as originate.
    recv = xmit if recv is None else recv
    return struct.pack(
        "!BBbbII4sII8sIIII", b0, stratum, 6, -20, 0, 0, b"GPS\0", xmit, 0, sent, recv, 0, xmit, frac
    )


def test_request_is_a_48_byte_v4_client_packet():
    buf = bytearray(48)
    sent = ntp.request(buf, T)
    assert len(buf) == 48 and buf[0] == 0x23  # LI 0, VN 4, mode 3
    assert bytes(buf[1:40]) == bytes(39)
    assert struct.unpack("!I", buf[40:44])[0] == T + DELTA and sent == bytes(buf[40:48])
    assert ntp.request(bytearray(48), T) != sent  # random fraction: unguessable


def test_good_reply_gives_server_timestamps_in_ms():
    sent = ntp.request(bytearray(48), T)
    stratum, t2, t3 = ntp.parse(reply(sent, frac=1 << 31), sent)
    assert stratum == 2 and t2 == T * 1000 and t3 == T * 1000 + 500


def test_era_one_timestamps_after_2036():
    # 2040-01-01 is past the NTP seconds wrap (2036-02-07): bit 0 clear means era 1.
    t2040 = 2208988800
    sent = ntp.request(bytearray(48), T)
    wrapped = (t2040 + DELTA) & 0xFFFFFFFF
    assert ntp.parse(reply(sent, xmit=wrapped), sent)[2] == t2040 * 1000


def test_bad_replies_are_errors_naming_the_fault():
    sent = ntp.request(bytearray(48), T)
    other = bytes(8)
    cases = (
        (None, "short"),
        (b"", "short"),
        (reply(sent)[:47], "short"),
        (reply(sent, b0=0x23), "mode 3"),
        (reply(sent, b0=0xE4), "LI 3"),
        (reply(sent, stratum=0)[:12] + b"RATE" + reply(sent)[16:], "RATE"),
        (reply(sent, stratum=16), "stratum 16"),
        (reply(other), "originate"),
        (reply(sent, xmit=0), "zero transmit"),
    )
    for data, why in cases:
        e = raises(ntp.NtpError, ntp.parse, data, sent)
        assert why in str(e), (why, e)


def _port():
    return int(os.getenv("NTP_PORT"))


async def sntp_query():
    # Prints the answer for the CPython test to check against its responder.
    clock.setup(start=1000, manual=True)  # a wrong clock: NTP must not depend on it
    timeout = int(os.getenv("NTP_TIMEOUT_MS") or "2000")
    try:
        utc = await ntp.query("127.0.0.1", _port(), timeout)
    except ntp.NtpError as e:
        print("NTP-RESULT error %s" % e)
        return
    print("NTP-RESULT ok utc=%d delay=%d stratum=%d" % (utc, ntp.last_delay_ms, ntp.last_stratum))


async def sntp_sync():
    # The boot path: no trusted time (fresh RTC chip), NTP sets clock and chip.
    from fw import sim_hal

    clock.setup(start=0, manual=True)
    hw = sim_hal()
    addr, model = rtc_model("ds3231", clock.now)
    hw.i2c().attach(addr, model)
    drv = rtc.open(hw.board, hw.i2c())
    assert clock.boot(hw, drv) is None and not clock.valid()
    host = await ntp.sync(["127.0.0.1"], _port(), 2000)
    assert host == "127.0.0.1" and clock.valid() and clock.source() == "ntp"
    print("NTP-SYNC now=%d chip=%d" % (clock.now(), drv.read()))

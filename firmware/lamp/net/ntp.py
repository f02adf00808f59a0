# SNTP client (RFC 4330; packet format RFC 5905 sec. 7.3) on asyncio, so a slow or
# silent server never stalls dimming. One query = one fresh UDP socket, connect()ed to
# the server so the stack drops datagrams from anyone else. The answer is UTC seconds
# computed from the server's timestamps and our monotonic round trip, so it does not
# depend on the wall clock being right (at boot it usually is not). Time comes from
# lamp.clock only; asyncio.wait_for_ms bounds the wait in real time, not warped time.
import asyncio
import os
import socket
import struct

from lamp import clock
from lamp.net import aio

_NTP_DELTA = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
_ERA = 4294967296  # 2**32: NTP seconds wrap on 2036-02-07 (RFC 4330 sec. 3)
_MODE_CLIENT = 3
_MODE_SERVER = 4
_VERSION = 4
_LEN = 48
_FMT = "!BBbb11I"  # LI/VN/mode, stratum, poll, precision, 11 32-bit words

# Where the last good answer came from, for status reports.
last_offset_ms = 0  # server time - our clock at the moment of the reply
last_delay_ms = 0
last_stratum = 0


class NtpError(Exception):
    pass


def _to_utc(secs):
    # RFC 4330 sec. 3: with bit 0 set the time is in 1968-2036 (era 0); clear, it is
    # 2036-2104 (era 1). Good until 2104 without knowing the era.
    if secs & 0x80000000:
        return secs - _NTP_DELTA
    return secs + _ERA - _NTP_DELTA


def request(buf, now):
    # Fill `buf` (48 bytes) with a client request; returns the transmit timestamp
    # (8 bytes) the server must echo as originate. Seconds from our clock, the fraction
    # random: an off-path attacker cannot guess it (RFC 5905 sec. 8, "bogus" check).
    buf[:] = bytes(_LEN)
    buf[0] = (_VERSION << 3) | _MODE_CLIENT  # LI 0, VN 4, mode 3 (RFC 4330 sec. 5)
    struct.pack_into("!I", buf, 40, (now + _NTP_DELTA) & 0xFFFFFFFF)
    buf[44:48] = os.urandom(4)
    return bytes(buf[40:48])


def parse(data, sent):
    # Validate a reply (RFC 4330 sec. 5, client checks) -> (stratum, receive ms,
    # transmit ms) with the two server timestamps in UTC milliseconds. NtpError if bad.
    if data is None or len(data) < _LEN:
        raise NtpError("short reply (%d bytes)" % (0 if data is None else len(data)))
    b0, stratum = data[0], data[1]
    if b0 & 7 != _MODE_SERVER:
        raise NtpError("reply mode %d, expected 4 (server)" % (b0 & 7))
    if b0 >> 6 == 3:
        raise NtpError("server not synchronised (LI 3)")
    if stratum == 0:
        # Kiss-o'-death (RFC 4330 sec. 8): the code is in the reference identifier.
        raise NtpError("kiss-o'-death %r" % bytes(data[12:16]))
    if stratum > 15:
        raise NtpError("stratum %d outside 1..15" % stratum)
    if bytes(data[24:32]) != sent:
        raise NtpError("originate timestamp does not echo our request")
    w = struct.unpack(_FMT, data[:_LEN])
    if w[13] == 0 and w[14] == 0:
        raise NtpError("zero transmit timestamp")
    return stratum, _ms(w[11], w[12]), _ms(w[13], w[14])


def _ms(secs, frac):
    # NTP 32.32 fixed point -> UTC milliseconds (rounded down).
    return _to_utc(secs) * 1000 + (frac * 1000 >> 32)


async def query(host, port=123, timeout_ms=3000):
    # -> UTC seconds now, from one SNTP exchange with host. NtpError on timeout, bad
    # reply or network error. getaddrinfo blocks on MicroPython: pass an IP, or accept
    # one DNS round trip's stall at (re)sync time.
    global last_offset_ms, last_delay_ms, last_stratum
    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    except OSError as e:
        raise NtpError("cannot resolve %s: %s" % (host, e))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        buf = bytearray(_LEN)
        sent = request(buf, clock.now())
        try:
            sock.connect(addr)
            t1 = clock.mono_ms()
            sock.send(buf)
            data: bytes = await asyncio.wait_for_ms(_recv(sock), timeout_ms)
        except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin one
            raise NtpError("no reply from %s:%d within %d ms" % (host, port, timeout_ms))
        except OSError as e:  # ECONNREFUSED (ICMP port unreachable), no route, ...
            raise NtpError("%s:%d: %s" % (host, port, e))
        t4 = clock.mono_ms()
        stratum, t2, t3 = parse(data, sent)
    finally:
        sock.close()
    # RFC 4330 sec. 5: delay = (T4 - T1) - (T3 - T2); the reply left the server at T3
    # and took half the delay to reach us. T1/T4 are monotonic: immune to a wrong clock.
    delay = max(0, (t4 - t1) - (t3 - t2))
    utc_ms = t3 + delay // 2
    last_delay_ms = delay
    last_offset_ms = utc_ms - clock.now() * 1000
    last_stratum = stratum
    return utc_ms // 1000


async def _recv(sock) -> bytes:
    # Wait until the socket is readable (asyncio's I/O poller), then read one datagram;
    # a reply longer than 48 bytes (extension fields, MAC) is cut to what we parse.
    await aio.readable(sock)
    return sock.recv(_LEN)


async def sync(servers, port=123, timeout_ms=3000):
    # Try each server in turn; set the clock from the first good answer. -> the server
    # used, or raises NtpError with the last failure.
    err = NtpError("no NTP servers configured")
    for server in servers:
        host, _, p = server.partition(":")  # "host" or "host:port" (not IPv6 literals)
        try:
            utc = await query(host, int(p) if p.isdigit() else port, timeout_ms)
        except NtpError as e:
            err = e
            continue
        clock.set_time(utc, "ntp")
        return server
    raise err

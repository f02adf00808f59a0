# Sockets under asyncio without asyncio.stream: a task waits in asyncio's I/O poller
# until its socket is ready, then calls the socket itself. asyncio.stream's Stream and
# open_connection do the same with an extra object and buffer per connection, and its
# module alone holds about 2.7 KB of a heap measured in tens (docs/firmware.md).
import asyncio
import socket

_queue = getattr(asyncio, "core")._io_queue  # MicroPython's poller (not in CPython's)


def readable(sock):
    # Awaitable: resumes when `sock` has data (or a datagram, or EOF, or an error).
    yield _queue.queue_read(sock)


def writable(sock):
    # Awaitable: resumes when `sock` takes more (or a connect finished or failed).
    yield _queue.queue_write(sock)


async def connect(host, port, ssl=None):
    # -> a connected non-blocking TCP socket, TLS-wrapped when `ssl` is an SSLContext
    # (its handshake runs with the first reads and writes, as asyncio's does). The context
    # verifies (CERT_REQUIRED, the broker's CA: lamp.net.link.tls_context) and `host` is
    # the name the certificate must carry; there is no unverified TLS here: the port's
    # default client context is CERT_NONE, which any man in the middle passes.
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], ai[1], ai[2])
    # IPPROTO_TCP, TCP_NODELAY: a small packet (a PUBACK, a chunk request) goes at once
    # instead of waiting for the peer's delayed ACK (tens of ms per round trip).
    s.setsockopt(6, 1, 1)
    s.setblocking(False)
    try:
        s.connect(ai[-1])
    except OSError as e:
        from errno import EINPROGRESS  # 115 on Linux, 119 on the ESP32's lwIP

        if e.errno != EINPROGRESS:  # else the connect goes on in the background
            s.close()
            raise
    if ssl:
        s = ssl.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
        s.setblocking(False)
    await writable(s)
    return s


async def write(sock, buf, timeout_ms):
    # All of `buf`, waiting while the socket's send buffer is full; a peer that takes
    # nothing for timeout_ms is a dead link (OSError). A TLS socket answers None while
    # its handshake or a record is under way: the same wait.
    mv = memoryview(buf)
    while mv:
        n = sock.write(mv)
        if n:
            mv = mv[n:]
        if mv:
            try:
                await asyncio.wait_for_ms(writable(sock), timeout_ms)
            except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin one
                raise OSError("peer took nothing for %d ms" % timeout_ms)

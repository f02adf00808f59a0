# The sim board's I2C bus and UART with their chips in another process (the controller's
# lanterna.simbus): every transaction travels over one loopback TCP connection, so the
# device models take none of the node's heap, as the chips take none of the pole's, and
# a test or an operator can break a chip of a running virtual node from outside.
# Wire format (both directions big-endian):
#   request: op(1) arg(1) n(2) node-time(4) len(2) data(len)
#   reply:   status(1) len(2) data(len)      status 0 ok, else the errno to raise
# ops: H hello (data: JSON of node, sensors, rtc), W i2c write, R i2c read of n bytes,
# S i2c scan, U uart: bytes the device sent (at most n), T uart write.
import socket
import struct

from lamp import clock
from lamp.hal.sim import SimI2C, SimUART

_HDR = ">BBHIH"


class Link:
    def __init__(self, address, hello):
        host, port = address.rsplit(":", 1)
        s = socket.socket()
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: no request waits for an ACK
        s.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self.s = s
        self.call(ord("H"), 0, 0, hello)

    def _recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise OSError(104)  # the bus process is gone: ECONNRESET
            out += chunk
        return out

    def call(self, op, arg=0, n=0, data=b""):
        self.s.send(struct.pack(_HDR, op, arg, n, clock.now() & 0xFFFFFFFF, len(data)) + data)
        status, size = struct.unpack(">BH", self._recv(3))
        body = self._recv(size) if size else b""
        if status:
            raise OSError(status)
        return body


class _Chip:
    # What SimI2C expects of a device model, forwarded to the one at `addr` remotely.
    def __init__(self, link, addr):
        self.link = link
        self.addr = addr

    def write(self, data):
        self.link.call(ord("W"), self.addr, 0, data)

    def read(self, n):
        return self.link.call(ord("R"), self.addr, n)


class RemoteI2C(SimI2C):
    def __init__(self, link):
        super().__init__()
        self.link = link

    def _dev(self, addr):
        if addr in self.nack:
            raise OSError(19)
        return _Chip(self.link, addr)

    def scan(self):
        return list(self.link.call(ord("S")))


class RemoteUART(SimUART):
    def __init__(self, link):
        super().__init__()
        self.link = link

    def any(self):
        # What the device has sent since the last look (its model produces frames as
        # node time passes), into the local receive buffer.
        if len(self.rx) < self.rxbuf:
            data = self.link.call(ord("U"), 0, self.rxbuf - len(self.rx))
            if data:
                self.feed(data)
        return len(self.rx)

    def write(self, data):
        self.link.call(ord("T"), 0, 0, bytes(data))
        return len(data)

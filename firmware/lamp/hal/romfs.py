# The ROMFS partition (docs/firmware.md, "Slots: files or ROMFS"): where the MicroPython
# build has one (vfs.rom_ioctl, a data partition labelled "romfs": a custom build, no
# stock image has it), the loader copies the running slot's lanterna.romfs into it and
# the bytecode runs in place from flash instead of costing the heap its size. The slot's
# copy on littlefs stays the A/B source of truth: the partition only ever mirrors the
# slot that boots, checked against the slot's manifest (sha256) at every boot.
#
# Reached through the block API of esp32.Partition (MicroPython docs/library/esp32.rst,
# vfs.AbstractBlockDev): readblocks(n, buf[, off]), writeblocks(n, buf[, off]),
# ioctl(op, arg), info(). On the unix port a host file of the partition's size stands in
# (LANTERNA_ROMFS_PART names it; opened outside any mount, as a partition is no file of
# the board's filesystem) with the same methods and the same erase semantics; the unix
# port has no rom_ioctl and cannot map a file, so mount() reads the image into RAM there,
# as the sim's romboot does.
import sys
from hashlib import sha256

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


BLOCK = const(4096)  # the ESP32 flash's erase sector, esp32.Partition's default block
_ERASE = const(6)  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE
_HEADER = b"\xd2\xcd\x31"  # a ROMFS image starts so (extmod/vfs_rom.c)


class FilePartition:
    # The unix port's stand-in for esp32.Partition: a file of the partition's size.
    # Erased flash reads 0xff; a simple writeblocks erases what it writes first, an
    # extended one (with an offset) only writes, as on the ESP32. With
    # LANTERNA_ROMFS_STEP set, every erase and write first prints "romfs step N" and waits
    # for a line on stdin: a test cuts the power (kill -9) at a step of its choosing.
    def __init__(self, path):
        import os

        import vfs

        # The host's path, not the board's; VfsPosix is the unix port's (no esp32 stub).
        self._f = getattr(vfs, "VfsPosix")().open(path, "r+b")
        self._f.seek(0, 2)
        self._size = self._f.tell()

        self._step = -1 if os.getenv("LANTERNA_ROMFS_STEP") is None else 0

    def _wait(self):
        if self._step >= 0:
            print("romfs step %d" % self._step)
            self._step += 1
            sys.stdin.readline()

    def info(self):
        return (1, 0x8F, 0, self._size, "romfs", False)

    def readblocks(self, n, buf, off=0):
        self._f.seek(n * BLOCK + off)
        self._f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            self._wait()
            self._erase(n * BLOCK, len(buf))
            off = 0
        self._wait()
        self._f.seek(n * BLOCK + off)
        self._f.write(buf)
        self._f.flush()

    def _erase(self, at, n):
        self._f.seek(at)
        self._f.write(b"\xff" * n)
        self._f.flush()

    def ioctl(self, op, arg):
        if op == 4:
            return self._size // BLOCK
        if op == 5:
            return BLOCK
        if op == _ERASE:
            self._wait()
            self._erase(arg * BLOCK, BLOCK)
            return 0
        return None


def partition():
    # -> the romfs partition as a block device, or None (a stock image: no ROMFS).
    if sys.platform == "esp32":
        import vfs

        if not hasattr(vfs, "rom_ioctl") or vfs.rom_ioctl(1) < 1:
            return None
        import esp32

        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="romfs")
        return found[0] if found else None
    import os

    path = os.getenv("LANTERNA_ROMFS_PART")
    return FilePartition(path) if path else None


def holds(dev, size, digest):
    # Does the partition hold exactly the image of `size` bytes with this sha256 (hex)?
    if size > dev.info()[3]:
        return False
    from binascii import hexlify

    h = sha256()
    buf = bytearray(BLOCK)
    mv = memoryview(buf)
    n = 0
    while n < size:
        dev.readblocks(n // BLOCK, buf)
        if not n and buf[:3] != _HEADER:
            return False  # erased or cut before its first block: not worth hashing
        k = min(BLOCK, size - n)
        h.update(mv[:k])
        n += k
    return hexlify(h.digest()).decode() == digest


def copy(dev, path, size):
    # The image file into the partition. Its first block is erased first and written
    # last: a power cut anywhere leaves no ROMFS header (nothing MicroPython would mount
    # at its next start) or the whole image. Raises OSError (28: it does not fit).
    if size > dev.info()[3]:
        raise OSError(28)
    _umount()  # nothing may run from it while it changes
    buf = bytearray(BLOCK)
    dev.ioctl(_ERASE, 0)
    with open(path, "rb") as f:
        last = (size - 1) // BLOCK
        for n in range(1, last + 1):
            f.seek(n * BLOCK)
            _fill(f, buf)
            dev.writeblocks(n, buf)
        f.seek(0)
        _fill(f, buf)
        dev.writeblocks(0, buf, 0)  # block 0 was erased above: an extended write


def _fill(f, buf):
    k = f.readinto(buf)
    for i in range(k or 0, BLOCK):
        buf[i] = 0xFF  # as erased flash


def _umount():
    import vfs

    try:
        vfs.umount("/rom")
    except OSError:
        pass


def mount(dev, size):
    # The partition's image at /rom. The pole maps it (vfs.rom_ioctl's segment is the
    # partition with the buffer protocol); the unix port reads it into one buffer.
    import vfs

    _umount()
    if sys.platform == "esp32":
        seg = vfs.rom_ioctl(2, 0)
    else:
        seg = bytearray(size)
        mv = memoryview(seg)
        for n in range(0, size, BLOCK):
            dev.readblocks(n // BLOCK, mv[n : n + BLOCK])  # the stand-in's: any buffer
    # VfsRom only exists in a build with MICROPY_VFS_ROM: not in the stock esp32 stubs.
    vfs.mount(getattr(vfs, "VfsRom")(seg), "/rom")

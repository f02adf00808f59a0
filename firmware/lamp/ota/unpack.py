# The files form of a slot from its verified image (docs/ota.md, "Slot forms"): a bundle
# carries the code once, as lanterna.romfs, signed through the manifest's sha256; a node
# whose firmware has no ROMFS (a stock image) runs the same modules as .mpy files, so the
# installer writes every file of the image into the slot's directory. The image is read
# from flash record by record (extmod/vfs_rom.c's format: a header, then records of
# kind, length, payload, each a varint), never held in RAM.
import os

_HEADER = b"\xd2\xcd\x31"
_DATA = 2  # ROMFS_RECORD_KIND_DATA_VERBATIM
_DIR = 4
_FILE = 5


def _uint(f):
    v = 0
    while True:
        b = f.read(1)
        if not b:
            raise ValueError("romfs: cut short")
        v = (v << 7) | (b[0] & 0x7F)
        if not b[0] & 0x80:
            return v


def unpack(image, dest, buf):
    # Every file of the ROMFS image `image` into the directory `dest` ("slots/b/"), with
    # its directories; buf: a bytearray to copy through. -> the number of files written.
    # ValueError for an image that is not one.
    with open(image, "rb") as f:
        if f.read(3) != _HEADER:
            raise ValueError("romfs: no header")
        n = _uint(f)
        return _walk(f, f.tell() + n, dest, memoryview(buf))


def _walk(f, end, d, mv):
    count = 0
    while f.tell() < end:
        kind = _uint(f)
        n = _uint(f)
        nxt = f.tell() + n
        if kind == _DIR or kind == _FILE:
            name = f.read(_uint(f)).decode()
            if "/" in name or name in ("", ".", ".."):
                raise ValueError("romfs: bad name %r" % name)
            if kind == _DIR:
                try:
                    os.mkdir(d + name)
                except OSError:
                    pass  # there from a run cut short
                count += _walk(f, nxt, d + name + "/", mv)
            else:
                _file(f, nxt, d + name, mv)
                count += 1
        f.seek(nxt)
    return count


def _file(f, end, path, mv):
    with open(path, "wb") as out:
        while f.tell() < end:
            kind = _uint(f)
            n = _uint(f)
            at = f.tell()
            left = n
            if kind == _DATA:
                while left:
                    k = f.readinto(mv[: min(left, len(mv))])
                    if not k:
                        raise ValueError("romfs: cut short")
                    out.write(mv[:k])
                    left -= k
            f.seek(at + n)

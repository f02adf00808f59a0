# Runs under MicroPython on the unix port, not CPython: the chip of a virtual board
# (lanterna.sim.vboard, docs/virtual-board.md). One process is one soft-reset generation: it
# runs boot.py (and main.py after a reset into the friendly REPL), then executes the code
# blocks the server sends on stdin, in one globals dict kept until the next reset, as a
# board's REPL does.
#
# Usage: micropython vboard_driver.py ROOT MODE MARK MACHINE
#   ROOT     the sandbox directory, mounted as "/" (a board's flash)
#   MODE     "raw" or "friendly": the REPL mode the reset left the board in
#   MARK     hex nonce; "\x1e" + MARK starts every record this driver writes
#   MACHINE  what os.uname().machine reports
#
# stdin, frames from the server: KIND LEN "\n" SOURCE, KIND "E" (a raw-REPL block, file
# input) or "L" (friendly-REPL input, single mode: expression values are printed), "G"
# (the answer to a W record: SOURCE "K" when a Ctrl-C came before the code could start)
# or "A 0" (the answer to an E record, below).
# stdout: the program's output as it comes (one stream, like a UART), and records
# "\x1e" MARK KIND LEN ":" PAYLOAD:
#   R  the driver runs; payload: the MicroPython version
#   W  the board's code is about to start: the server answers G
#   B  the board's code (boot.py, main.py, a block) starts: a Ctrl-C may come now
#   E  that code has ended: the server sends no more Ctrl-C and answers "A"
#   D  a block (or the boot) finished; payload: its traceback, if it raised
#   S  sys.exit() or machine.soft_reset(): a soft reset, in the same REPL mode
#   H  machine.reset(): a hard reset, which boots into the friendly REPL
#
# Ctrl-C is SIGINT while the code runs (between B and E). This unix port (no GIL) raises
# the KeyboardInterrupt from the signal handler, wherever the process is; one that comes
# within a few ms after the process wrote something is sometimes lost (measured: 12 of 30
# SIGINTs sent as soon as a `while True: pass` loop's first output was read), so the
# server sends it again until the code ends (lanterna.sim.vboard_chip). A Ctrl-C that
# came before the code started needs no signal: the G answer carries it, and it is raised
# at the code's first line. Every KeyboardInterrupt that lands in _run after the code is
# taken as the code's, never lets the driver die.
import io
import os
import sys

import romboot  # from beside this file, before sys.path becomes the board's
import vfs

_ME = sys.argv[0]
_ROOT, _MODE, _MARK, _MACHINE = sys.argv[1:5]
_REC = b"\x1e" + _MARK.encode()
_out = sys.stdout.buffer
_inp = sys.stdin.buffer
_reset = [b"S"]  # which reset a SystemExit asks for


class SandboxVfs:
    # The sandbox as a MicroPython VFS mounted at "/": every path, absolute or relative
    # to the board's working directory, is resolved lexically inside ROOT, so "/x" is
    # ROOT/x and ".." stops at "/". VfsPosix(root) alone would let "/.." out.
    def __init__(self, root):
        self._fs = vfs.VfsPosix()  # unmounted: it sees the host's real paths
        self._root = root.rstrip("/")
        self._cwd = "/"

    def _norm(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for p in path.split("/"):
            if p == "..":
                if parts:
                    parts.pop()
            elif p and p != ".":
                parts.append(p)
        return "/" + "/".join(parts)

    def _real(self, path):
        return self._root + self._norm(path)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        return self._fs.open(self._real(path), mode)

    def ilistdir(self, path):
        # With the size, as a board's littlefs gives it (VfsPosix leaves it out).
        real = self._real(path)
        for e in self._fs.ilistdir(real):
            size = 0 if e[1] == 0x4000 else self._fs.stat(real + "/" + e[0])[6]
            yield (e[0], e[1], e[2], size)

    def stat(self, path):
        return self._fs.stat(self._real(path))

    def statvfs(self, path):
        return self._fs.statvfs(self._real(path))

    def mkdir(self, path):
        self._fs.mkdir(self._real(path))

    def rmdir(self, path):
        self._fs.rmdir(self._real(path))

    def remove(self, path):
        self._fs.remove(self._real(path))

    def rename(self, old, new):
        self._fs.rename(self._real(old), self._real(new))

    def chdir(self, path):
        path = self._norm(path)
        if not self._fs.stat(self._root + path)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = path

    def getcwd(self):
        return self._cwd


class _Module:
    # A stand-in module: the real one's names, some replaced.
    def __init__(self, real, drop=(), **override):
        for k in dir(real):
            if not k.startswith("__") and k not in drop:
                setattr(self, k, getattr(real, k))
        for k, v in override.items():
            setattr(self, k, v)


def _soft_reset():
    _reset[0] = b"S"
    raise SystemExit


def _hard_reset():
    _reset[0] = b"H"
    raise SystemExit


def _uname():
    from collections import namedtuple

    v = ".".join(str(n) for n in sys.implementation.version[:3])
    fields = ("sysname", "nodename", "release", "version", "machine")
    u = namedtuple("uname_result", fields)
    return u("linux", "vboard", v, "v" + v + " (Lanterna virtual board)", _MACHINE)


def _board():
    # What a board's firmware provides beyond the unix port: os.uname, machine.reset and
    # machine.soft_reset; os.system goes (no shell from the board).
    import machine

    sys.modules["os"] = _Module(os, ("system",), uname=_uname)
    sys.modules["machine"] = _Module(machine, reset=_hard_reset, soft_reset=_soft_reset)
    vfs.umount("/")
    vfs.mount(SandboxVfs(_ROOT), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]  # an ESP32's
    sys.argv[:] = []


def _record(kind, payload=b""):
    _out.write(b"%s%s%d:%s" % (_REC, kind, len(payload), payload))


def _traceback(e):
    # As the board prints it: without this driver's own frames.
    buf = io.StringIO()
    sys.print_exception(e, buf)
    skip = '  File "' + _ME + '"'
    return "".join(s + "\n" for s in buf.getvalue().split("\n") if s and not s.startswith(skip))


def _run(code, glob, name="<stdin>"):
    # -> the record that ends the code: (kind, traceback). Between B and the server's
    # answer to E, a SIGINT may land anywhere here; it is taken as the code's (pyexec
    # takes one that comes as a block ends too).
    kind, err = b"D", None
    said = [False, False]  # E written, A read
    _record(b"W")
    if _read_frame(_inp)[1] == b"K":  # a Ctrl-C came first: the code stops at its start
        code = compile("raise KeyboardInterrupt", name, "exec")
    try:
        _record(b"B")
        try:
            exec(code, glob)
        except SystemExit:
            kind = _reset[0]
        except BaseException as e:  # noqa: BLE001 -- the board reports it and carries on
            err = e
    except KeyboardInterrupt as e:  # the run's Ctrl-C, come as the code ended
        if err is None:
            err = e
    while not said[1]:
        try:
            _quiet(said)
        except KeyboardInterrupt:  # the server's Ctrl-C again, sent before it saw E
            pass
    return kind, b"" if err is None else _traceback(err).encode()


def _quiet(said):
    # E, then the server's "A": it sends no SIGINT once it has seen E. said[] is set right
    # after the write or read, so a KeyboardInterrupt here rarely makes a record go twice
    # or an answer go unread.
    if not said[0]:
        _record(b"E")
        said[0] = True
    while not said[1]:
        line = _inp.readline()
        said[1] = True
        if not line:
            sys.exit(0)  # the server has gone


def _file(name, glob):
    # pyexec_file: a file on the board's flash runs in the REPL's globals.
    try:
        with open(name) as f:
            src = f.read()
    except OSError:
        return b"D", b""
    try:
        return _run(compile(src, name, "exec"), glob, name)
    except SyntaxError as e:
        return b"D", _traceback(e).encode()


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _boot(glob):
    # -> the record ending the boot. Tracebacks are printed: the console shows them.
    kind, err = _file("boot.py", glob)
    _out.write(err)
    if kind != b"D":
        return kind
    # The ROMFS stand-in, as romboot does for lanterna sim: the slot that firmware/boot.py
    # chose holds the image of the compiled firmware, read into RAM at /rom. Not when
    # main.py is about to run: the loader a pole is provisioned with (firmware/loader.py)
    # picks the slot's form itself (files, the romfs partition LANTERNA_ROMFS_PART stands
    # in for, the image in RAM), as on the pole.
    slot = glob.get("SLOT")
    image = slot + "lanterna.romfs" if isinstance(slot, str) else None
    loader = _MODE == "friendly" and _exists("main.py")
    try:
        os.stat(image)
        if not loader:
            romboot.mount(image)
    except (OSError, TypeError):
        image = None
    if _MODE != "friendly":
        return kind
    if not loader:
        if image is not None:  # main.mpy in the image, as romboot imports it
            kind, err = _run("import main", glob)
            _out.write(err)
        return kind
    kind, err = _file("main.py", glob)
    _out.write(err)
    return kind


def _read_frame(inp):
    line = inp.readline()
    if not line:
        sys.exit(0)  # the server has gone
    kind, n = line.split()
    src = b""
    n = int(n)
    while len(src) < n:
        chunk = inp.read(n - len(src))
        if not chunk:
            sys.exit(0)
        src += chunk
    return kind, src


def main():
    _board()
    glob = {"__name__": "__main__"}
    v = ".".join(str(n) for n in sys.implementation.version[:3])
    _record(b"R", v.encode())
    kind = _boot(glob)
    _record(kind)
    while kind == b"D":
        frame, src = _read_frame(_inp)
        try:
            code = compile(src, "<stdin>", "single" if frame == b"L" else "exec")
        except SyntaxError as e:
            kind, err = b"D", _traceback(e).encode()
        else:
            kind, err = _run(code, glob)
        _record(kind, err)


main()

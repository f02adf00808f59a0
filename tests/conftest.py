"""Shared fixtures for the CPython tests (controller, CLI, harness)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Waits for an expected line or exit: generous, as a loaded machine (the suite runs under
# pytest-xdist, beside anything else on the host) only makes the line come later.
WAIT_S = 60.0
# The files whose tests take minutes (a district of real nodes, thirty nights at warp, a
# flood of 10,000 messages): collected first, so that pytest-xdist starts them at once
# and the short tests fill the other worker around them, instead of one long test
# starting last and running alone. Order within each group is unchanged.
LONG_FIRST = (
    "test_ota_rollout.py",
    "test_node_schedule_nights.py",
    "test_node_network.py",
    "test_firmware_build.py",
    "test_talq_district.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


def free_udp_ports(n: int) -> int:
    """The first of `n` consecutive UDP ports free on 127.0.0.1 just now (CoAP ports of a
    district's nodes: base, base + 1, ...), held together while they are looked for."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind(("127.0.0.1", 0))
            base = first.getsockname()[1]
            if base + n > 65536:
                continue
            held = []
            try:
                for port in range(base + 1, base + n):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    held.append(s)
                    s.bind(("127.0.0.1", port))
                return base
            except OSError:
                continue  # one of them is taken: another base
            finally:
                for s in held:
                    s.close()


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def lanterna_cmd() -> list[str]:
    """The installed console script, as a user runs it."""
    return [str(VENV_BIN / "lanterna")]


class Proc:
    """A child process whose output lines are collected by a reader thread, so a test can
    wait for an expected line (with a timeout) instead of sleeping."""

    def __init__(self, args: list[str], **kwargs) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.p = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float = WAIT_S, start: int = 0) -> str:
        """The first output line (from index `start`) containing `needle`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
        raise AssertionError(
            f"{needle!r} not seen in {timeout}s; output:\n" + "\n".join(self.lines)
        )

    def stop(self, sig: int, timeout: float = WAIT_S) -> int:
        self.p.send_signal(sig)
        code = self.p.wait(timeout=timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self._reader.join(5)


@pytest.fixture
def spawn() -> Iterator:
    """Start processes with spawn(args); every one is stopped when the test ends."""
    procs: list[Proc] = []

    def _spawn(args: list[str], **kwargs) -> Proc:
        proc = Proc(args, **kwargs)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        proc.kill()


@pytest.fixture
def responder() -> Iterator:
    """A real SNTP server on 127.0.0.1 (tests/sntp.py); stopped when the test ends."""
    from sntp import Responder

    r = Responder()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def mosquitto(tmp_path) -> Iterator:
    """A real mosquitto on 127.0.0.1 (lanterna/broker.py), running; stopped at the end."""
    from lanterna.broker.mosquitto import Mosquitto

    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LANTERNA_MICROPYTHON", None)
    return env


# -- the store's backends ------------------------------------------------------------------
# One throw-away PostgreSQL cluster per test session (per xdist worker), started the first
# time a test asks for it (tests/pgserver.py); each test gets a fresh database in it.


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator:
    import pgserver

    if not pgserver.available():
        msg = "PostgreSQL is not installed (make sysdeps installs the postgresql package)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + ": CI runs the store tests on it, never skips them")
        pytest.skip(msg)
    with pgserver.PgServer() as server:
        yield server


@pytest.fixture
def postgres(pg_cluster) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's PostgreSQL; dropped after."""
    url = pg_cluster.create_db()
    try:
        yield url
    finally:
        pg_cluster.drop_db(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path) -> str:
    """A new store on each backend: a SQLite path, or a PostgreSQL URL (ids sqlite,
    postgresql)."""
    if request.param == "sqlite":
        return str(tmp_path / "lanterna.db")
    return request.getfixturevalue("postgres")

"""A real mosquitto broker on 127.0.0.1 for tests, benches and `make demo`: a free port,
a password file, no anonymous access; start, stop and restart (same port, same
persistence) under the caller's control; or (Generated) one started from exactly what
`lanterna broker config` wrote. Whoever starts a broker stops it."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from lanterna.procs import die_with_parent

BINARY = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The test broker's ingest queue: sized as `lanterna broker config` sizes the field's
# (lanterna.broker.config.queue_plan) for the largest fleet the tests and benches run
# against one serve: 10,000 nodes at one message a minute, serve away for an hour.
TEST_FLEET = 10_000


class Mosquitto:
    def __init__(
        self,
        root: Path,
        users: dict[str, str] | None = None,
        max_queued: int | None = None,
        sys_interval: int = 10,
    ) -> None:
        """`max_queued`: the queue limit of every persistent session (None: sized for
        TEST_FLEET); `sys_interval`: seconds between the broker's $SYS updates (its
        dropped-message count among them)."""
        from lanterna.broker.config import queue_plan

        self.root = root
        self.max_queued = (
            max_queued if max_queued is not None else queue_plan(TEST_FLEET).max_queued
        )
        self.sys_interval = sys_interval
        self.port = free_port()
        self.users = dict(users or {})
        self.users.setdefault("controller", "controller-test-secret")
        self.proc: subprocess.Popen | None = None
        self.log = root / "mosquitto.log"
        root.mkdir(parents=True, exist_ok=True)
        self._write_config()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def add_user(self, name: str, password: str) -> None:
        self.add_users({name: password})

    def add_users(self, users: dict[str, str]) -> None:
        """Accounts into the password file in one write; a running broker restarts to
        read it."""
        self.users.update(users)
        self._write_config()
        if self.proc is not None:
            self.restart()

    def _write_config(self) -> None:
        pw = self.root / "passwd"
        pw.write_text("")
        pw.chmod(0o600)
        for name, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), name, password], check=True)
        (self.root / "mosquitto.conf").write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    # as root mosquitto would drop to user mosquitto, who cannot read the
                    # 0600 password file this test user wrote
                    f"user {getpass.getuser()}",
                    "allow_anonymous false",
                    f"password_file {pw}",
                    "persistence true",
                    # the controller's ingest session: many messages in flight, and a
                    # queue for the outage it must survive (mosquitto's defaults: 20
                    # and 1000; global in mosquitto 2.0, lanterna.broker.config)
                    "max_inflight_messages 1000",
                    f"max_queued_messages {self.max_queued}",
                    f"sys_interval {self.sys_interval}",
                    # small packets (acks, OTA chunk requests) leave at once instead of
                    # waiting out the peer's delayed ACK: ~90 ms less per round trip
                    "set_tcp_nodelay true",
                    f"persistence_location {self.root}/",
                    f"log_dest file {self.log}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> None:
        self.proc = _spawn(self.root / "mosquitto.conf", [self.port], self.log, timeout)

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _spawn(conf: Path, ports: list[int], log: Path, timeout: float) -> subprocess.Popen:
    # mosquitto from `conf`, returned once every one of `ports` accepts a TCP connection
    # on 127.0.0.1; RuntimeError (with its log) if it exits or is not listening in time.
    proc = subprocess.Popen(
        [BINARY, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + timeout
    waiting = list(ports)
    while waiting:
        if proc.poll() is not None:
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"mosquitto exited with {proc.returncode}: {text}")
        if time.monotonic() > deadline:
            _end(proc)
            raise RuntimeError(f"mosquitto did not listen on {waiting} in time")
        try:
            socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.2).close()
            waiting.pop(0)
        except OSError:
            time.sleep(0.02)  # polling for the listener, bounded by the deadline
    return proc


def _end(proc: subprocess.Popen | None) -> None:
    # SIGTERM (mosquitto saves its persistence file and exits), SIGKILL after 5 s.
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Generated:
    """mosquitto started from exactly the directory `lanterna broker config` wrote (its
    mosquitto.conf, nothing added), ready once every one of `ports` accepts a TCP
    connection. A context manager: whoever starts it stops it, also on an error."""

    def __init__(self, out: Path, ports: list[int]) -> None:
        self.out = out
        self.ports = list(ports)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Generated:
        log = self.out / "mosquitto.log"
        self.proc = _spawn(self.out / "mosquitto.conf", self.ports, log, timeout)
        return self

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None

    def __enter__(self) -> Generated:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

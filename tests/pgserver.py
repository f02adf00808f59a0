"""A throw-away PostgreSQL cluster for the tests (and bench/bench_store.py).

``PgServer`` runs ``initdb`` into a temp dir, starts the server with ``pg_ctl`` on a free
TCP port of 127.0.0.1 (and a unix socket in the temp dir), waits until it answers a
connection (``pg_isready``, polled with a deadline, never a sleep), and on ``stop()`` shuts
it down and removes the dir. fsync is off: the cluster dies with the run, so durability
buys nothing and costs every commit a flush.

initdb refuses to run as root: as root the server runs as the ``postgres`` system user
(created by Debian's postgresql package), who owns the temp dir. Authentication is trust,
for loopback and the socket only, inside this cluster that nothing else uses.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

READY_S = 60.0


def pg_bin(name: str) -> str | None:
    """A PostgreSQL program: on PATH, else the newest /usr/lib/postgresql/*/bin (Debian
    keeps initdb and pg_ctl off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for d in dirs:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def _version_key(d: str) -> tuple[int, ...]:
    part = Path(d).parent.name
    return tuple(int(x) for x in part.split(".") if x.isdigit()) or (0,)


def available() -> bool:
    return all(pg_bin(n) for n in ("initdb", "pg_ctl", "pg_isready"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self) -> None:
        if not available():
            raise RuntimeError(
                "PostgreSQL not found (initdb, pg_ctl, pg_isready on PATH or in "
                "/usr/lib/postgresql/*/bin): install the postgresql package (make sysdeps)"
            )
        self.root = Path(tempfile.mkdtemp(prefix="lanterna-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.port = _free_port()
        self.user = "postgres"
        self._as: dict[str, object] = {}
        self._started = False
        self._dbs = 0

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, check=True, capture_output=True, text=True, **self._as, **kwargs
        )  # type: ignore[call-overload]

    def start(self) -> PgServer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.sock.mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (self.root, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        try:
            self._run(
                [
                    str(pg_bin("initdb")),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"initdb failed: {e.stderr.strip()}") from None
        # Trust only on loopback and the socket, inside this throw-away cluster.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.sock} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        try:
            self._run(
                [
                    str(pg_bin("pg_ctl")),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    opts,
                    "-w",
                    "-t",
                    str(int(READY_S)),
                    "start",
                ]
            )
        except subprocess.CalledProcessError as e:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {e.stderr.strip()}\n{tail}") from None
        self._started = True
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_S
        args = [str(pg_bin("pg_isready")), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
        while True:
            if subprocess.run(args, check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} not ready in {READY_S} s")
            time.sleep(0.05)  # a poll interval with a deadline, not a synchronisation

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_db(self, name: str | None = None) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._dbs += 1
        name = name or f"t{os.getpid()}_{self._dbs}"
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_db(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._started:
            subprocess.run(
                [str(pg_bin("pg_ctl")), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
                **self._as,  # type: ignore[arg-type]
            )
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

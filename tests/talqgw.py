"""The TALQ gateway for the tests: `lanterna talq-gateway` as a city runs it (a subprocess
on a free loopback port, mutual TLS with certificates of tests/talqpki.py), and a CMS's
side of the Gateway API (`Talq`: its client certificate, its address, TALQ's headers and
parameters on every request)."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from conftest import WAIT_S, Proc
from webconsole import LANTERNA

VERSION = "2.7.1"


class GatewayProc:
    """`lanterna talq-gateway --listen 127.0.0.1:0` with the store and broker of `env`."""

    def __init__(
        self, env: Mapping[str, str], cert: tuple[Path, Path], client_ca: Path, *args: str
    ) -> None:
        self.url = ""
        cmd = [
            LANTERNA,
            "talq-gateway",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            str(cert[0]),
            "--tls-key",
            str(cert[1]),
            "--client-ca",
            str(client_ca),
            *args,
        ]
        self.proc = Proc(cmd, env=dict(env))

    def wait_ready(self, ca: Path, timeout: float = WAIT_S) -> None:
        """Once it printed its URL and completes a TLS handshake there (with no client
        certificate the server refuses the request, which is an answer)."""
        deadline = time.monotonic() + timeout
        line = self.proc.wait_for("lanterna talq-gateway: https", timeout)
        m = re.search(r"(https://[^/\s]+)/", line)
        assert m, f"no URL in {line!r}"
        self.url = m.group(1)
        host, port = self.url.split("//")[1].rsplit(":", 1)
        import socket

        while True:
            if self.proc.p.poll() is not None:
                raise AssertionError(f"talq-gateway exited:\n{self.output()}")
            try:
                with socket.create_connection((host, int(port)), timeout=2):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"talq-gateway not answering in {timeout}s:\n{self.output()}")
            time.sleep(0.05)  # polling for the server, bounded by the deadline

    def output(self) -> str:
        return "\n".join(self.proc.lines[-60:])

    def stop(self, timeout: float = 30.0) -> None:
        try:
            self.proc.stop(signal.SIGTERM, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_gateway(
    env: Mapping[str, str], cert: tuple[Path, Path], client_ca: Path, ca: Path, *args: str
) -> GatewayProc:
    g = GatewayProc(env, cert, client_ca, *args)
    try:
        g.wait_ready(ca)
    except BaseException:
        g.stop()
        raise
    return g


class Talq:
    """A CMS calling the gateway: its client certificate, its TALQ address."""

    def __init__(self, url: str, ca: Path, cert: tuple[Path, Path] | None, address: str) -> None:
        self.url = url
        self.address = address
        self.s = requests.Session()
        self.s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        self.s.verify = str(ca)
        if cert is not None:
            self.s.cert = (str(cert[0]), str(cert[1]))

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict | None = None,
        headers: dict | None = None,
        write: bool | None = None,
    ) -> requests.Response:
        q = {"clientAddress": self.address}
        if write if write is not None else method != "GET":
            q["talqRequestId"] = str(uuid.uuid4())
        q.update(query or {})
        h = {"talq-api-version": VERSION}
        h.update(headers or {})
        return self.s.request(
            method,
            self.url + path,
            params={k: v for k, v in q.items() if v is not None},
            json=body,
            headers=h,
            timeout=WAIT_S,
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.call("GET", path, **kw)

    def ok(
        self, method: str, path: str, body: Any = None, want: tuple[int, ...] = (200,), **kw: Any
    ) -> Any:
        r = self.call(method, path, body, **kw)
        assert r.status_code in want, f"{method} {path}: {r.status_code} {r.text[:500]}"
        assert r.headers.get("talq-api-version") == VERSION
        return r.json() if r.content else None


def tls_context(ca: Path, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx

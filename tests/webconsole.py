"""The web console for the browser tests and bench/bench_web_map.py: `lanterna web` as a
user starts it (a subprocess on a free loopback port), operators made through the real
CLI (`lanterna user add --generate`), and Debian's chromium driven by Playwright, never a
downloaded browser.

A `Tab` is one browser context and its page. It keeps every request URL, console error
and page error, and aborts (and records) every request whose origin is not the
console's own: a page that would load a CDN, a web font or a tile server fails the
"renders offline" tests instead of silently working on a connected machine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import VENV_BIN, WAIT_S, Proc

LANTERNA = str(VENV_BIN / "lanterna")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
READY_MS = 30_000  # a page's data-ready, a selector: bounds a test that already failed


class Web:
    """`lanterna web --listen 127.0.0.1:0` with the store and broker of `env`
    ($LANTERNA_HOME or $LANTERNA_DB, $LANTERNA_BROKER, as the rest of the CLI): the
    server binds a free port itself and prints its URL, so no other process can take
    the port between a look and the bind."""

    def __init__(self, env: Mapping[str, str], *args: str) -> None:
        self.url = ""
        self.proc = Proc([LANTERNA, "web", "--listen", "127.0.0.1:0", *args], env=dict(env))

    def wait_ready(self, timeout: float = WAIT_S) -> None:
        """Return once the server has printed its URL and answers HTTP there (any
        status: a 401 or 404 is an answer too); fail at once if it exits."""
        deadline = time.monotonic() + timeout
        line = self.proc.wait_for("lanterna web: http", timeout)
        m = re.search(r"(https?://[^/\s]+)/", line)
        assert m, f"no URL in {line!r}"
        self.url = m.group(1)
        while True:
            code = self.proc.p.poll()
            if code is not None:
                raise AssertionError(f"lanterna web exited {code}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/signin", timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                pass  # bound, not serving yet
            if time.monotonic() > deadline:
                raise AssertionError(f"lanterna web not answering in {timeout}s:\n{self.output()}")
            time.sleep(0.05)  # polling for the server, bounded by the deadline

    def output(self) -> str:
        return "\n".join(self.proc.lines[-50:])

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self.proc.stop(signal.SIGTERM, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_web(env: Mapping[str, str], *args: str) -> Web:
    web = Web(env, *args)
    try:
        web.wait_ready()
    except BaseException:
        web.stop()
        raise
    return web


def add_user(env: Mapping[str, str], name: str, role: str) -> str:
    """Make an account through the CLI and return its one-time password (on stdout, a
    line alone; the note goes to stderr). Neither stdout nor the password is ever put
    in an assertion message."""
    r = subprocess.run(
        [LANTERNA, "user", "add", name, "--role", role, "--generate"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, f"lanterna user add {name} exited {r.returncode}: {r.stderr}"
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines, f"lanterna user add {name}: no password on stdout ({r.stderr})"
    return lines[-1].strip()


def origin_of(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


class Tab:
    """One browser context (1280x800, the console's origin as base URL) and its page,
    with the network cut off for every other origin."""

    def __init__(self, browser: Any, origin: str, route: bool = True) -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.context = browser.new_context(viewport=VIEWPORT, base_url=origin)
        if route:
            self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(READY_MS)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on(
            "console",
            lambda m: (
                self.console_errors.append(f"{m.text} ({m.location})")
                if m.type == "error"
                else None
            ),
        )

    def _route(self, route: Any) -> None:
        url = route.request.url
        if origin_of(url) == self.origin:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def goto(self, path: str, ready: str) -> None:
        """Navigate and wait until the page says it has rendered its data."""
        self.page.goto(path)
        self.wait_ready(ready)

    def wait_ready(self, ready: str) -> None:
        self.page.wait_for_selector(f"body[data-ready='{ready}']", state="attached")

    def sign_in(self, user: str, password: str) -> dict[str, Any]:
        """Sign in through the API (the session cookie lands in this context)."""
        r = self.context.request.post("/api/signin", data={"user": user, "password": password})
        assert r.status == 200, f"sign in as {user}: HTTP {r.status} {r.text()}"
        return r.json()

    def sign_in_form(self, user: str, password: str) -> None:
        """Sign in as a person does: the form on /signin (not waited for: the caller
        waits for where it should land)."""
        self.goto("/signin", "signin")
        self.page.fill("#signin-user", user)
        self.page.fill("#signin-password", password)
        self.page.click("#signin-submit")

    def fetch(self, method: str, path: str, body: Any = None, headers: Any = None) -> dict:
        """A request made by the page's own fetch (its cookies, its origin):
        {"status", "body"} with the body parsed as JSON when it is JSON."""
        return self.page.evaluate(
            """async ([method, path, body, headers]) => {
                const h = Object.assign({"content-type": "application/json"}, headers || {});
                const r = await fetch(path, {method, headers: h,
                    body: body === null ? undefined : JSON.stringify(body)});
                const text = await r.text();
                let parsed = text;
                try { parsed = JSON.parse(text); } catch (e) {}
                return {status: r.status, body: parsed};
            }""",
            [method, path, body, headers],
        )

    def foreign(self) -> list[str]:
        """Every request that went (or tried to go) anywhere but the console's origin."""
        seen = [u for u in self.requests if origin_of(u) != self.origin]
        return sorted(set(seen + self.blocked))

    def close(self) -> None:
        self.context.close()


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless (no sandbox: the tests may run as root)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
    )


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright (executable_path: nothing is
    downloaded); skipped only when chromium is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"chromium is not installed ({CHROMIUM}): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    p = sync_playwright().start()
    try:
        browser = launch(p)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        p.stop()


@pytest.fixture
def tabs(chromium) -> Iterator[Any]:
    """tabs(origin) opens a Tab on the console; every one is closed when the test ends."""
    opened: list[Tab] = []

    def _open(origin: str, route: bool = True) -> Tab:
        tab = Tab(chromium, origin, route)
        opened.append(tab)
        return tab

    yield _open
    for tab in opened:
        tab.close()


def text_of(tab: Tab, selector: str) -> str:
    return re.sub(r"\s+", " ", tab.page.inner_text(selector)).strip()

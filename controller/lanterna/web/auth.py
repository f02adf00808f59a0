"""Who is asking: sessions, CSRF tokens and the sign-in limiter of the console.

A session is a random token (32 bytes, urlsafe) in an HttpOnly, SameSite=Strict cookie
(Secure when the console is served over TLS); the server keeps what it stands for in
memory (operator, role, CSRF token, times), so a restart signs everyone out and a stolen
store holds no session. A session ends after IDLE_S without a request, or MAX_S after
sign-in, or at sign-out. Every write carries the session's CSRF token in the
``X-CSRF-Token`` header (compared in constant time), so a page of another origin that
makes the browser send the cookie cannot write.

Sign-in attempts are limited per user name and per client address: FAILURES_ALLOWED
failures within WINDOW_S and the next try is refused (429) until the oldest failure
leaves the window. The check runs before the password is hashed, so a flood costs no
scrypt.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

COOKIE = "lanterna_session"
IDLE_S = 8 * 3600.0
MAX_S = 24 * 3600.0
FAILURES_ALLOWED = 5
WINDOW_S = 300.0


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf: str
    started: float
    seen: float

    def public(self) -> dict[str, str]:
        return {"user": self.user, "role": self.role, "csrf": self.csrf}

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


@dataclass
class Sessions:
    """The signed-in sessions, by token (thread safe: the API runs in a thread pool)."""

    clock: object = time.monotonic
    _by_token: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, user: str, role: str) -> Session:
        now = self._now()
        s = Session(secrets.token_urlsafe(32), user, role, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = self._now()
        with self._lock:
            s = self._by_token.get(token)
            if s is None:
                return None
            if now - s.seen > IDLE_S or now - s.started > MAX_S:
                del self._by_token[token]
                return None
            s.seen = now
            return s

    def end(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def end_user(self, user: str) -> None:
        """Every session of `user` (removed or demoted operators)."""
        with self._lock:
            for t in [t for t, s in self._by_token.items() if s.user == user]:
                del self._by_token[t]

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator]


@dataclass
class Limiter:
    """Failed sign-ins per key (a user name, an address) within a sliding window."""

    allowed: int = FAILURES_ALLOWED
    window_s: float = WINDOW_S
    clock: object = time.monotonic
    _fails: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, *keys: str) -> float:
        """Seconds until a try is allowed again for all of `keys` (0: allowed now)."""
        now = self.clock()  # type: ignore[operator]
        wait = 0.0
        with self._lock:
            for k in keys:
                q = self._fails.get(k)
                if not q:
                    continue
                while q and now - q[0] >= self.window_s:
                    q.popleft()
                if len(q) >= self.allowed:
                    wait = max(wait, self.window_s - (now - q[0]))
                if not q:
                    del self._fails[k]
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()  # type: ignore[operator]
        with self._lock:
            for k in keys:
                self._fails.setdefault(k, deque()).append(now)
            if len(self._fails) > 100_000:  # a flood of names: forget the quiet ones
                for k in [k for k, q in self._fails.items() if now - q[-1] >= self.window_s]:
                    del self._fails[k]

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)
